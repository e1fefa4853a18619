"""MT Photos' AI API (the "mt-photos-ai" and face services' routes) on the Immich service.

MT Photos calls ``/check``, ``/ocr``, ``/clip/img``, ``/clip/txt``, ``/represent``,
``/restart`` and ``/restart_v2`` with an ``api-key`` header (CONTRACTS.md §3). They run on the
same local models, runners and batching as Immich's ``/predict``; this package only reads MT's
requests and writes MT's answers (``answers``), checks the key (``auth``), and routes
(``routes``).
"""
