"""The local web app behind `veil serve`: upload, progress, review, download, live camera.

Needs the `web` extra (FastAPI, uvicorn); nothing here is imported by `import veil`.
"""
