"""``gouache serve``: a web page and a JSON API around one loaded model.

Importing this package does not import FastAPI; ``gouache.serve.app`` does.
"""
