"""Worker of ``benchmarks/asr_peers.py``: one toolkit's CTC ASR training on AN4, one epoch per request.

Run by the interpreter of the toolkit's own environment (seqkit: the project's venv;
SpeechBrain: ``.bench_venvs/speechbrain``)::

    python benchmarks/asr_peers_worker.py SIDE WORK

``SIDE`` is ``seqkit`` or ``speechbrain``; ``WORK`` the folder with ``settings.json`` (written by
the main script: manifests, model size, batching, optimiser, threads) and the manifests
``data/train.jsonl`` / ``data/dev.jsonl``.  One JSON command per line on stdin, one JSON answer
per line on stdout:

* ``{"op": "info"}`` -> versions, parameter count, output units, set-up seconds (features);
* ``{"op": "start", "seed": S}``: a fresh, seeded model, optimiser and batch sampler;
* ``{"op": "epoch"}``: one training epoch with the toolkit's own training loop (seqkit:
  :class:`seqkit.train.trainer.Trainer`; SpeechBrain: :class:`speechbrain.core.Brain`).
  Answers ``seconds`` (from the call to the end of the epoch's last optimizer step, read by a
  global ``torch.optim`` step hook, so end-of-epoch bookkeeping is not counted), ``call_seconds``
  (the whole call), optimizer steps, batches, utterances, real and padded input frames and
  the mean training loss of the epoch;
* ``{"op": "decode"}``: greedy CTC transcripts of the dev manifest (manifest order), with the
  toolkit's own greedy decoder; not part of any epoch time;
* ``{"op": "quit"}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from _bench_common import NullLog, serve  # benchmarks/ is sys.path[0] when run as a script
from torch.optim.optimizer import register_optimizer_step_post_hook

SIDE, WORK = sys.argv[1], Path(sys.argv[2])
S = json.loads((WORK / "settings.json").read_text())
torch.set_num_threads(S["threads"])
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass


class StepClock:
    """perf_counter at the end of every optimizer step (both toolkits step a torch.optim.Adam)."""

    def __init__(self):
        self.last = None
        self.steps = 0
        register_optimizer_step_post_hook(self._hook)

    def reset(self) -> None:
        self.last, self.steps = None, 0

    def _hook(self, opt, args, kwargs) -> None:
        self.last = time.perf_counter()
        self.steps += 1


CLOCK = StepClock()


class BatchCounter:
    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.batches = self.utts = self.frames = self.padded = 0
        self.loss_sum = 0.0

    def add(self, lengths: torch.Tensor, padded_len: int) -> None:
        self.batches += 1
        self.utts += int(lengths.numel())
        self.frames += int(lengths.sum())
        self.padded += int(lengths.numel()) * int(padded_len)

    def result(self) -> dict:
        return {"batches": self.batches, "utterances": self.utts, "frames": self.frames,
                "padded_frames": self.padded, "loss": self.loss_sum / max(self.batches, 1)}


COUNT = BatchCounter()


def read_jsonl(path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]


def norm_text(text: str) -> str:
    """The transcript both sides train on and the driver scores against (seqkit's ASR normalisation)."""
    return " ".join(text.split())


# --------------------------------------------------------------------------- seqkit


class Seqkit:
    """seqkit's ASR task (``recipes/asr/an4/config.yaml`` with CTC only, no SpecAugment, no speed
    perturbation, constant learning rate): features from its FeatureCache (computed once into
    ``WORK/seqkit_feature_cache``, then kept in memory), global CMVN fitted on train, the
    Trainer's bucketed batches under ``train.max_tokens`` padded frames."""

    def __init__(self):
        from seqkit.config import load_config
        from seqkit.tasks import get_task

        t0 = time.perf_counter()
        self.out = WORK / "seqkit_run"
        overrides = [
            "task=asr", f"data.train={WORK}/data/train.jsonl", f"data.dev={WORK}/data/dev.jsonl",
            "data.units=char", "data.sample_rate=16000", "data.features=fbank", f"data.n_mels={S['n_mels']}",
            "data.cmvn=global", "data.speed_perturb=[1.0]", f"data.cache_dir={WORK}/seqkit_feature_cache",
            "data.allow_outside_paths=true",
            "model.front=stack", f"model.stack={S['stack']}", "model.encoder=blstm",
            f"model.enc_layers={S['layers']}", f"model.enc_hidden={S['hidden']}", f"model.dropout={S['dropout']}",
            "model.ctc_weight=1.0", "model.specaugment=false",
            "decode.method=ctc_greedy", "decode.eval_method=ctc_greedy", f"decode.batch_size={S['decode_batch']}",
            f"train.output_dir={self.out}", f"train.max_tokens={S['max_frames']}", "train.optimizer=adam",
            f"train.lr={S['lr']}", "train.scheduler=none", "train.warmup_steps=0",
            f"train.clip_grad_norm={S['clip']}", f"train.num_threads={S['threads']}", "train.device=cpu",
            "train.progress=false", "train.tensorboard=false", "train.checkpoint_every=null",
            "train.max_minutes=null", "train.keep_best=false", f"train.epochs={S['epochs']}",
            "train.log_every=1000000",
        ]
        self.cfg = load_config(S["seqkit_recipe"], overrides)
        self.task = get_task("asr")(self.cfg)
        self.task.build_state()  # vocabulary, features of train (cached), global CMVN
        self.examples, self.lengths, self.collate = self.task.training_data()
        self.dev_utts, self.dev_items = self.task._dev(self.cfg.data.dev, "data.dev")
        self.setup_seconds = time.perf_counter() - t0
        self.trainer = None

    def info(self) -> dict:
        import seqkit

        m = self.task.build_model()
        return {"version": seqkit.__version__, "torch": torch.__version__,
                "params": sum(p.numel() for p in m.parameters()), "outputs": len(self.task.vocab),
                "train_utterances": len(self.examples), "dev_utterances": len(self.dev_items),
                "setup_seconds": self.setup_seconds,
                "features": "seqkit FeatureCache (torchaudio MelSpectrogram, log), computed once, in memory"}

    def start(self, seed: int) -> dict:
        from seqkit.train.trainer import Trainer, configure_process, seed_everything

        self.cfg.train.seed = seed
        self.cfg.train.epochs = S["epochs"]
        configure_process(self.cfg.train)  # as Trainer.fit does
        seed_everything(seed)
        model = self.task.build_model()
        fwd = model.forward

        def counted(batch):
            out = fwd(batch)
            COUNT.add(batch["feat_lengths"], batch["feats"].size(1))
            COUNT.loss_sum += float(out["loss"].detach())
            return out

        model.forward = counted
        self.model = model
        self.trainer = Trainer(model, self.cfg.train, self.examples, self.lengths, self.collate, evaluate=None,
                               log=lambda s: None)
        # no checkpoint files on either side (the peer gets no Checkpointer)
        self.trainer.save = lambda name: self.trainer.out / name
        return {"params": sum(p.numel() for p in model.parameters())}

    def epoch(self) -> dict:
        tr = self.trainer
        tr.cfg.epochs = tr.state["epoch"] + 1  # _loop stops after this epoch
        tr.state.update(finished=False, stop_reason=None)
        COUNT.reset()
        CLOCK.reset()
        torch.set_num_threads(S["threads"])
        t0 = time.perf_counter()
        tr._loop(NullLog())
        t1 = time.perf_counter()
        return {"seconds": CLOCK.last - t0, "call_seconds": t1 - t0, "steps": CLOCK.steps, **COUNT.result()}

    def decode(self) -> dict:
        self.model.eval()
        t0 = time.perf_counter()
        hyps = self.task.decode(self.model, self.dev_items, "ctc_greedy")
        sec = time.perf_counter() - t0
        self.model.train()
        return {"seconds": sec, "hyps": [norm_text(h) for h in hyps],
                "ids": [u.id for u in self.dev_utts]}


# --------------------------------------------------------------------------- SpeechBrain


class SpeechBrain:
    """SpeechBrain 1.x from its own parts: DynamicItemDataset + data pipelines, CTCTextEncoder,
    Fbank, InputNormalization (global), speechbrain.nnet.RNN.LSTM, Linear, Softmax(log),
    ctc_loss, ctc_greedy_decode, DynamicBatchSampler, PaddedBatch and the Brain training loop."""

    def __init__(self):
        import speechbrain as sb
        from speechbrain.dataio.dataio import read_audio
        from speechbrain.dataio.dataset import DynamicItemDataset
        from speechbrain.dataio.encoder import CTCTextEncoder
        from speechbrain.lobes.features import Fbank
        from speechbrain.processing.features import InputNormalization
        from speechbrain.utils.data_pipeline import provides, takes

        t0 = time.perf_counter()
        self.sb = sb
        self.cached = S["sb_features"] == "cached"
        train = read_jsonl(WORK / "data/train.jsonl")
        dev = read_jsonl(WORK / "data/dev.jsonl")
        self.dev_ids = [u["id"] for u in dev]

        def as_dict(utts):
            return {u["id"]: {"path": u["path"], "duration": float(u["duration"]), "text": norm_text(u["text"])}
                    for u in utts}

        self.train_ds = DynamicItemDataset(as_dict(train))
        self.dev_ds = DynamicItemDataset(as_dict(dev))
        datasets = [self.train_ds, self.dev_ds]

        # features: SpeechBrain's Fbank; global mean/variance statistics of the whole training set
        # accumulated once by InputNormalization (update_until_epoch=1, this pass is epoch 0),
        # frozen during training (forward is called with epoch=1)
        self.fbank = Fbank(sample_rate=16000, n_mels=S["n_mels"], win_length=25, hop_length=10)
        self.norm = InputNormalization(norm_type="global", update_until_epoch=1)
        self.norm.train()
        self.cache: dict[str, torch.Tensor] = {}
        train_ids = {u["id"] for u in train}
        with torch.no_grad():
            for u in train + dev:
                f = self.fbank(read_audio(u["path"]).unsqueeze(0))  # (1, T, n_mels)
                if u["id"] in train_ids:
                    self.norm(f, torch.ones(1), epoch=0)
                if self.cached:
                    self.cache[u["id"]] = f[0]
        self.norm.eval()

        if self.cached:
            @takes("id")
            @provides("feats")
            def feat_pipeline(uid):
                return self.cache[uid]

            sb.dataio.dataset.add_dynamic_item(datasets, feat_pipeline)
            keys = ["id", "feats", "tokens"]
        else:
            @takes("path")
            @provides("sig")
            def audio_pipeline(path):
                return read_audio(path)

            sb.dataio.dataset.add_dynamic_item(datasets, audio_pipeline)
            keys = ["id", "sig", "tokens"]

        self.encoder = enc = CTCTextEncoder()

        @takes("text")
        @provides("char_list", "tokens")
        def text_pipeline(text):
            char_list = list(text)
            yield char_list
            yield torch.LongTensor(enc.encode_sequence(char_list))

        sb.dataio.dataset.add_dynamic_item(datasets, text_pipeline)
        lab = WORK / "speechbrain_label_encoder.txt"
        lab.unlink(missing_ok=True)  # the training set may differ from the last run's (--limit)
        enc.load_or_create(path=str(lab), from_didatasets=[self.train_ds], output_key="char_list",
                           special_labels={"blank_label": 0}, sequence_input=True)
        enc.expect_len(len(enc))  # characters of the training set + blank
        sb.dataio.dataset.set_output_keys(datasets, keys)
        self.durations = [float(u["duration"]) for u in train]
        self.setup_seconds = time.perf_counter() - t0
        self.brain = None

    def _modules(self) -> dict:
        from speechbrain.nnet.activations import Softmax
        from speechbrain.nnet.linear import Linear
        from speechbrain.nnet.RNN import LSTM

        d = S["n_mels"] * S["stack"]
        return {
            "compute_features": self.fbank,
            "normalize": self.norm,
            "drop": torch.nn.Dropout(S["dropout"]),
            "enc": LSTM(hidden_size=S["hidden"], input_shape=[None, None, d], num_layers=S["layers"],
                        dropout=S["dropout"], bidirectional=True),
            "ctc_lin": Linear(input_size=2 * S["hidden"], n_neurons=len(self.encoder)),
            "log_softmax": Softmax(apply_log=True),
        }

    def _brain_class(self):
        sb = self.sb
        side = self

        class CTCBrain(sb.Brain):
            started = False

            def on_fit_start(self):  # once: a second call would re-create the optimizer
                if not self.started:
                    super().on_fit_start()
                    self.started = True

            def compute_forward(self, batch, stage):
                m = self.modules
                if side.cached:
                    feats, lens = batch.feats
                else:
                    wavs, lens = batch.sig
                    feats = m.compute_features(wavs)
                feats = m.normalize(feats, lens, epoch=1)  # frozen global statistics
                if stage == sb.Stage.TRAIN:
                    COUNT.add((lens * feats.size(1)).round().long(), feats.size(1))
                b, t, f = feats.shape
                k = S["stack"]
                feats = torch.nn.functional.pad(feats, (0, 0, 0, (-t) % k))
                x = feats.reshape(b, feats.size(1) // k, k * f)  # 4 frames stacked into one
                y, _ = m.enc(m.drop(x), lengths=lens)
                return m.log_softmax(m.ctc_lin(m.drop(y))), lens

            def compute_objectives(self, predictions, batch, stage):
                p_ctc, lens = predictions
                tokens, tokens_lens = batch.tokens
                loss = sb.nnet.losses.ctc_loss(p_ctc, tokens, lens, tokens_lens, blank_index=0)
                if stage == sb.Stage.TRAIN:
                    COUNT.loss_sum += float(loss.detach())
                return loss

        return CTCBrain

    def info(self) -> dict:
        import speechbrain
        import torchaudio

        torch.manual_seed(0)
        mods = self._modules()
        return {"version": speechbrain.__version__, "torch": torch.__version__, "torchaudio": torchaudio.__version__,
                "params": sum(p.numel() for v in mods.values() for p in v.parameters()),
                "outputs": len(self.encoder), "train_utterances": len(self.train_ds),
                "dev_utterances": len(self.dev_ds), "setup_seconds": self.setup_seconds,
                "features": "SpeechBrain Fbank "
                + ("computed once, in memory" if self.cached else "computed per batch from the audio (its recipes' usage)")}

    def start(self, seed: int) -> dict:
        from speechbrain.dataio.sampler import DynamicBatchSampler

        sb = self.sb
        torch.manual_seed(seed)
        mods = self._modules()
        lr = S["lr"]
        self.brain = self._brain_class()(
            modules=mods, opt_class=lambda params: torch.optim.Adam(params, lr=lr),
            run_opts={"device": "cpu", "max_grad_norm": S["clip"], "noprogressbar": True},
            checkpointer=None)
        # buckets: quantiles of the training durations; a batch of bucket i holds
        # int(max_batch_seconds / upper edge of i) utterances (padded audio <= max_batch_seconds)
        nb = S["sb_buckets"]
        q = sorted(self.durations)
        edges = sorted({q[min(len(q) - 1, (len(q) * (i + 1)) // nb - 1)] for i in range(nb)})
        self.sampler = DynamicBatchSampler(self.train_ds, max_batch_length=S["max_frames"] / 100.0,
                                           bucket_boundaries=edges, length_func=lambda x: x["duration"],
                                           shuffle=True, batch_ordering="random", seed=seed)
        self.loader = self.brain.make_dataloader(self.train_ds, stage=sb.Stage.TRAIN, batch_sampler=self.sampler,
                                                 num_workers=0)
        self.brain.train_sampler = self.sampler  # _fit_train calls set_epoch (as under DDP)
        self.n_epoch = 0
        torch.set_num_threads(S["threads"])
        return {"params": sum(p.numel() for p in self.brain.modules.parameters())}

    def epoch(self) -> dict:
        self.n_epoch += 1
        COUNT.reset()
        CLOCK.reset()
        torch.set_num_threads(S["threads"])
        t0 = time.perf_counter()
        self.brain.fit([self.n_epoch], self.loader, progressbar=False)
        t1 = time.perf_counter()
        return {"seconds": CLOCK.last - t0, "call_seconds": t1 - t0, "steps": CLOCK.steps, **COUNT.result()}

    def decode(self) -> dict:
        from speechbrain.decoders import ctc_greedy_decode

        sb = self.sb
        dev = self.dev_ds.filtered_sorted(sort_key="duration")
        loader = sb.dataio.dataloader.make_dataloader(dev, batch_size=S["decode_batch"])
        out = {}
        self.brain.modules.eval()
        t0 = time.perf_counter()
        with torch.no_grad():
            for batch in loader:
                p_ctc, lens = self.brain.compute_forward(batch, sb.Stage.TEST)
                seqs = ctc_greedy_decode(p_ctc, lens, blank_id=0)
                for uid, chars in zip(batch.id, self.encoder.decode_ndim(seqs)):
                    out[uid] = norm_text("".join(chars))
        sec = time.perf_counter() - t0
        self.brain.modules.train()
        return {"seconds": sec, "hyps": [out[i] for i in self.dev_ids], "ids": self.dev_ids}


def main() -> None:
    side = {"seqkit": Seqkit, "speechbrain": SpeechBrain}[SIDE]()

    def handle(cmd: dict) -> dict:
        op = cmd["op"]
        if op == "info":
            res = side.info()
        elif op == "start":
            res = side.start(cmd["seed"])
        elif op == "epoch":
            res = side.epoch()
        elif op == "decode":
            res = side.decode()
        else:
            res = {"error": f"unknown op {op}"}
        return {**res, "threads": torch.get_num_threads()}

    serve(handle)


if __name__ == "__main__":
    main()
