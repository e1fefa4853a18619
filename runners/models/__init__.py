"""Where model files come from: wheels, the BentoML model store, and downloads.

``python -m runners.models list`` shows every model; ``python -m runners.models import ...``
fills the store. Serving reads files only: it never downloads.
"""
