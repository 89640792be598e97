"""gouache: text-to-image diffusion you train on your own captioned pictures.

    from gouache import Pipeline
    Pipeline.load().generate("red apple").images[0].save("apple.png")
"""
from gouache.errors import GouacheError
from gouache.sampling.pipeline import Pipeline

__all__ = ["Pipeline", "GouacheError", "__version__"]
__version__ = "0.1.0"
