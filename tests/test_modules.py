"""seqkit.nn basics used by the tagger, and the JointTagger model itself."""

from __future__ import annotations

import pytest
import torch

from seqkit.models.tagger import IGNORE, JointTagger
from seqkit.nn.crf import bio_transition_constraints
from seqkit.nn.embedding import CharCNN
from seqkit.nn.pooling import SequencePooling
from seqkit.nn.rnn import RNNEncoder


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_encoder_padding_never_changes_real_positions(cell):
    torch.manual_seed(0)
    enc = RNNEncoder(5, 7, num_layers=2, bidirectional=True, cell=cell).eval()
    lengths = torch.tensor([6, 3, 1])
    x = torch.randn(3, 6, 5)
    x[1, 3:] = 1e3  # garbage in padding must not leak into real positions
    x[2, 1:] = -1e3
    out, _ = enc(x, lengths)
    assert out.shape == (3, 6, 14)
    for i, n in enumerate(lengths.tolist()):
        alone, _ = enc(x[i : i + 1, :n], lengths[i : i + 1])
        torch.testing.assert_close(out[i, :n], alone[0], rtol=1e-5, atol=1e-6)
        assert torch.all(out[i, n:] == 0)


def test_char_cnn_ignores_character_padding():
    torch.manual_seed(0)
    cnn = CharCNN(num_chars=10, char_dim=4, num_filters=6, kernel_size=3, pad_id=0)
    short = torch.tensor([[[3, 4, 5, 0, 0]]])
    longer_pad = torch.tensor([[[3, 4, 5, 0, 0, 0, 0, 0]]])
    torch.testing.assert_close(cnn(short), cnn(longer_pad))
    empty = torch.zeros(1, 1, 5, dtype=torch.long)
    assert torch.all(cnn(empty) == 0)


@pytest.mark.parametrize("mode", ["attention", "mean", "max"])
def test_pooling_is_masked(mode):
    torch.manual_seed(0)
    pool = SequencePooling(4, mode)
    h = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    h2 = h.clone()
    h2[0, 3:] = 99.0
    a, w = pool(h, mask)
    b, _ = pool(h2, mask)
    torch.testing.assert_close(a, b)
    alone, _ = pool(h[:1, :3], mask[:1, :3])
    torch.testing.assert_close(a[:1], alone)
    if mode == "attention":
        assert torch.all(w[0, 3:] == 0) and torch.allclose(w.sum(-1), torch.ones(2))


@pytest.mark.parametrize("crf,slot_attention", [(False, "none"), (True, "none"), (True, "additive")])
def test_joint_tagger_overfits_a_toy_set(crf, slot_attention):
    """Tags: B-x on token 3, I-x on the token after it; intent = whether token 5 occurs."""
    torch.manual_seed(0)
    labels = ["<pad>", "O", "B-x", "I-x"]
    g = torch.Generator().manual_seed(1)
    n, t = 24, 7
    tokens = torch.randint(4, 8, (n, t), generator=g)
    tokens[::2, 2] = 3
    lengths = torch.randint(4, t + 1, (n,), generator=g)
    tags = torch.ones(n, t, dtype=torch.long)
    tags[tokens == 3] = 2
    shifted = torch.zeros_like(tags)
    shifted[:, 1:] = (tokens[:, :-1] == 3).long()
    tags[shifted.bool()] = 3
    for i, n_i in enumerate(lengths.tolist()):
        tokens[i, n_i:] = 0
        tags[i, n_i:] = IGNORE
    intents = torch.tensor([int((row == 5).any()) for row in tokens])
    batch = {"tokens": tokens, "lengths": lengths, "tags": tags, "intents": intents}
    model = JointTagger(vocab_size=8, num_tags=4, num_intents=2, emb_dim=16, hidden_size=16, dropout=0.0,
                        crf=crf, crf_constraints=bio_transition_constraints(labels),
                        slot_attention=slot_attention)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        model(batch)["loss"].backward()
        opt.step()
    model.eval()
    paths, intent_pred, attn = model.predict(batch)
    gold = [tags[i, :n_i].tolist() for i, n_i in enumerate(lengths.tolist())]
    assert paths == gold
    assert torch.equal(intent_pred, intents)
    assert attn.shape == (n, t)


@pytest.mark.parametrize("kind", ["additive", "general", "dot"])
def test_slot_attention_tagger_padding_never_changes_real_positions(kind):
    """Liu & Lane slot attention: a padded batch scores real positions as each sentence alone."""
    torch.manual_seed(0)
    model = JointTagger(vocab_size=9, num_tags=5, num_intents=3, emb_dim=8, hidden_size=6,
                        dropout=0.0, slot_attention=kind).eval()
    lengths = torch.tensor([6, 3, 1])
    tokens = torch.randint(2, 9, (3, 6))
    for i, n_i in enumerate(lengths.tolist()):
        tokens[i, n_i:] = 0
    emissions, intents, _, _ = model.encode({"tokens": tokens, "lengths": lengths})
    for i, n_i in enumerate(lengths.tolist()):
        alone = {"tokens": tokens[i : i + 1, :n_i], "lengths": lengths[i : i + 1]}
        e_i, intent_i, _, _ = model.encode(alone)
        assert torch.allclose(emissions[i, :n_i], e_i[0], atol=1e-6)
        assert torch.allclose(intents[i], intent_i[0], atol=1e-6)
