"""``gouache``'s public names: each imports from the package, and importing the package is cheap."""
import subprocess
import sys

import gouache

PUBLIC = ("Pipeline", "SamplingOptions", "Generation", "GouacheError", "train", "TrainConfig")


def test_the_public_names_are_the_library_s_own():
    from gouache import (
        Generation,
        GouacheError,
        Pipeline,
        SamplingOptions,
        TrainConfig,
        train,
    )
    from gouache.errors import GouacheError as error
    from gouache.sampling.options import SamplingOptions as options
    from gouache.sampling.pipeline import Generation as generation
    from gouache.sampling.pipeline import Pipeline as pipeline
    from gouache.training.config import TrainConfig as config
    from gouache.training.train import train as run

    assert (Pipeline, SamplingOptions, Generation, GouacheError, train, TrainConfig) == \
        (pipeline, options, generation, error, run, config)
    assert set(PUBLIC) <= set(gouache.__all__) and set(PUBLIC) <= set(dir(gouache))


def test_an_unknown_name_is_an_attribute_error():
    assert not hasattr(gouache, "Trainer")


def test_importing_the_package_does_not_import_torch():
    code = "import sys, gouache; print('torch' in sys.modules, gouache.__version__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "False"
