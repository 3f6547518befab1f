"""Rendering files for the app, shared by secrets and config: sandboxed templates
and built-in formats (``templates``, which loads Jinja2: import it only where a
template is rendered), and atomic writes (``files``)."""
