"""The built-in status and try-it page at ``/ui/``: plain HTML, CSS and JavaScript in
``static/``, shipped with the package (no build step, nothing fetched from the internet).

The page reads ``/ui/api/status`` (``status``: what is served, loaded, the upstream, MT Photos'
routes), the service's own ``/metrics``, and makes its predictions through the public
``/predict`` exactly as a client does; the server keeps nothing of the photos.
"""
