"""The ``config`` section: files the app reads, watched and rendered.

Watched paths are hashed (content, not timestamps) at every scan and whenever
inotify says their directories changed; a change that settles (``wait``) and
passes ``validate`` notifies the app. Templates render from local sources (a
mounted ConfigMap, files, environment variables) and render again when those
change. Nothing here talks to Vault: that is ``pillion.secrets``.
"""
