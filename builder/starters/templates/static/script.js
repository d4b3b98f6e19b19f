// Scripts for the site go here.
