"""``pillion demo``: a local pod on this machine, a demo app plus Pillion.

``app`` is the application (it knows nothing of Pillion); ``runner`` starts it
and Pillion with the built-in ``pillion.yaml`` next to this file, prints what to
try, and stops both on Ctrl-C. Each feature adds itself to that config.
"""
