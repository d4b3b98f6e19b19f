"""Previews on their own origin: signed preview links and the gateway that serves them.

A preview runs code the model wrote, so it never shares an origin with the API or the
studio. Its URL carries a token (:mod:`builder.preview.tokens`) in the host name, and
the gateway (:mod:`builder.preview.gateway`) reverse-proxies it to the project's dev
server. :mod:`builder.preview.urls` turns a dev server into the public URL clients see.
"""

from __future__ import annotations
