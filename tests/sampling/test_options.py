"""SamplingOptions: defaults written once, checked when made, stricter limits as a policy."""
import dataclasses

import pytest

from gouache.errors import GouacheError
from gouache.sampling.options import LIBRARY_LIMITS, Limits, SamplingOptions
from gouache.sampling.samplers import SAMPLERS


def test_defaults_and_the_samplers_own_steps():
    opts = SamplingOptions()
    assert (opts.sampler, opts.steps, opts.guidance, opts.negative_prompt) == ("auto", None, 3.0, "")
    assert opts.resolve(None) == SamplingOptions("dpmpp_2m", 20)  # no student: the diffusion model's
    assert opts.resolve(3.0) == SamplingOptions("consistency", 4)  # a student distilled at this guidance
    for name, spec in SAMPLERS.items():
        assert SamplingOptions(sampler=name).steps == spec.default_steps
    assert SamplingOptions(sampler="ddpm", steps=7).steps == 7


@pytest.mark.parametrize("kwargs, message", [
    (dict(sampler="magic"), "unknown sampler 'magic'"),
    (dict(steps=0), "steps must be a whole number from 1 to 1000"),
    (dict(steps=1001), "steps must be"),
    (dict(steps=2.5), "steps must be"),
    (dict(steps=True), "steps must be"),
    (dict(guidance=-1.0), "guidance must be a number from 0 to 50"),
    (dict(guidance=float("nan")), "guidance"),
    (dict(guidance=float("inf")), "guidance"),
    (dict(guidance="3"), "guidance"),
    (dict(negative_prompt=None), "negative prompt must be text"),
])
def test_a_bad_record_cannot_be_made(kwargs, message):
    with pytest.raises(GouacheError, match=message):
        SamplingOptions(**kwargs)


@pytest.mark.parametrize("options, student, want", [
    (SamplingOptions(steps=8), 3.0, SamplingOptions("consistency", 8)),
    (SamplingOptions(guidance=5.0), 3.0, SamplingOptions("dpmpp_2m", 20, guidance=5.0)),
    (SamplingOptions(negative_prompt="x"), 3.0, SamplingOptions("dpmpp_2m", 20, negative_prompt="x")),
    (SamplingOptions("heun"), 3.0, SamplingOptions("heun")),
])
def test_auto_takes_the_student_only_for_what_it_paints(options, student, want):
    assert options.resolve(student) == want


@pytest.mark.parametrize("options, student, message", [
    (SamplingOptions("consistency"), None, "needs a model with a few-step student"),
    (SamplingOptions("consistency", guidance=5.0), 3.0, "paints at guidance 3 .* not with guidance 5"),
    (SamplingOptions("consistency", negative_prompt="x"), 3.0, "not with a negative prompt"),
])
def test_the_student_sampler_is_refused_where_it_cannot_paint(options, student, message):
    with pytest.raises(GouacheError, match=message):
        options.resolve(student)


def test_variants_are_checked_too_and_frozen():
    opts = SamplingOptions()
    with pytest.raises(GouacheError):
        dataclasses.replace(opts, steps=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.steps = 3  # type: ignore[misc]
    assert dataclasses.replace(opts, guidance=5.0) == SamplingOptions(guidance=5.0)


def test_a_stricter_policy():
    server = Limits(max_steps=200, max_guidance=20.0)
    assert SamplingOptions(steps=200).check(server).steps == 200
    with pytest.raises(GouacheError, match="from 1 to 200"):
        SamplingOptions(steps=500).check(server)
    with pytest.raises(GouacheError, match="from 0 to 20"):
        SamplingOptions(guidance=30.0).check(server)
    assert SamplingOptions(steps=500).check(LIBRARY_LIMITS).steps == 500


def test_the_server_takes_its_defaults_and_limits_from_here():
    pytest.importorskip("fastapi")
    from gouache.serve.schemas import SERVER_LIMITS, GenerateRequest, InfoResponse

    req = GenerateRequest(prompt="red apple")
    assert req.sampling_options() == SamplingOptions()
    info = InfoResponse.model_fields
    assert info["default_sampler"].default == SamplingOptions().sampler
    assert info["default_guidance"].default == SamplingOptions().guidance
    assert GenerateRequest.model_fields["steps"].metadata[-1].le == SERVER_LIMITS.max_steps
