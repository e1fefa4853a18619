"""Adapters speak the wire contracts: they parse and validate requests, decode images with
limits, route each (task, type, model) to a local model or the upstream, and shape responses.
They hold no model sessions."""
