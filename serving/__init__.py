"""driftloop serving: the FastAPI app (``serving.app.create_app``) and ``driftloop serve``.

Imports nothing at package level, so ``driftloop`` can name it without loading FastAPI.
"""
