"""The studio: builder's own web app, served at ``/`` by ``builder serve``.

:mod:`.routes` serves the page, its static files and signing in and out;
:mod:`.session` is the session cookie and its CSRF token. The page itself is plain ES
modules with Preact and htm vendored under ``static/vendor`` (no build step).
"""
