import torch


def test_shapes_mask_and_pooled(text_encoder):
    e = text_encoder(["red apple", "", "an emoji of a green banana, twitter style"])
    b, length, dim = e.tokens.shape
    assert (b, dim) == (3, 384)
    assert e.mask.dtype == torch.bool and e.mask.shape == (3, length)
    assert e.mask[1].sum() == 2  # "" is [CLS] [SEP]: the unconditional prompt
    assert e.mask[0].sum() == 4  # [CLS] red apple [SEP]
    assert torch.all(e.tokens[~e.mask] == 0)  # padding carries nothing
    assert torch.allclose(e.pooled.norm(dim=1), torch.ones(3), atol=1e-5)


def test_padding_does_not_change_a_prompt(text_encoder):
    alone = text_encoder(["red apple"])
    padded = text_encoder(["red apple", "a much longer prompt that forces padding of the first"])
    assert torch.allclose(alone.pooled[0], padded.pooled[0], atol=1e-5)
    n = int(alone.mask[0].sum())
    assert torch.allclose(alone.tokens[0, :n], padded.tokens[0, :n], atol=1e-4)


def test_frozen_no_gradient(text_encoder):
    assert all(not p.requires_grad for p in text_encoder.parameters())
    with torch.enable_grad():
        e = text_encoder(["cat face"])
    assert not e.tokens.requires_grad and e.tokens.grad_fn is None
    text_encoder.train()
    assert not text_encoder.training and not text_encoder.model.training


def test_truncates_to_max_length(text_encoder):
    long = " ".join(["apple"] * 100)
    assert text_encoder([long]).tokens.shape[1] == text_encoder.max_length


def test_sentence_embedding_matches_sentence_transformers(text_encoder):
    import pytest

    st = pytest.importorskip("sentence_transformers")
    from gouache.text import default_text_model

    ref = st.SentenceTransformer(str(default_text_model()), device="cpu", local_files_only=True)
    prompts = ["red apple", "grinning face"]
    want = torch.tensor(ref.encode(prompts))
    assert torch.allclose(text_encoder(prompts).pooled, want, atol=1e-5)


def test_unknown_model_is_a_clear_error(tmp_path):
    import pytest

    from gouache.errors import GouacheError
    from gouache.text import TextEncoder

    with pytest.raises(GouacheError, match="cannot load the text encoder"):
        TextEncoder(str(tmp_path / "no-such-model"))
