"""The model in the browser: ``gouache export MODEL --web OUT`` writes a static site (``site.py``)
that runs the few-step student exported to ONNX (``onnx_export.py``) with onnxruntime-web
(``runtime.py``)."""
