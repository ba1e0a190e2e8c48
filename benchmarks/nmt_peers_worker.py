"""Worker of ``benchmarks/nmt_peers.py``: one toolkit's training and beam search on Multi30k.

Run by the interpreter of the toolkit's own environment (seqkit: the project's venv; JoeyNMT
and OpenNMT-py: their venvs under ``.bench_venvs/``)::

    python benchmarks/nmt_peers_worker.py SIDE WORK

``SIDE`` is ``seqkit``, ``joeynmt`` or ``opennmt``; ``WORK`` the folder with the pre-tokenised
data (``train.de``/``train.en``/``val.de``/``val.en``: SentencePiece pieces separated by spaces)
and ``settings.json`` (architecture and batching, written by the main script).  It reads one
JSON command per line on stdin and answers one JSON line on stdout:

* ``{"op": "info"}`` -> versions, parameter count and vocabulary size;
* ``{"op": "train", "steps": N, "warmup": W, "tag": T}``: trains a fresh model (seeded) with
  the toolkit's own training loop for N optimizer steps and stops it by an exception raised
  from a global optimizer step hook (``torch.optim.optimizer.register_optimizer_step_post_hook``)
  at step N; answers the wall-clock seconds of steps W+1..N (between the ends of the
  optimizer steps W and N: data loading, forward, backward, clipping and the update, all in
  the toolkit's loop) and the non-pad target tokens (target words + EOS) and sentences of
  those steps, counted from each toolkit's own per-batch counts (seqkit ``out["n"]``, JoeyNMT
  ``batch.ntokens``, OpenNMT-py ``Statistics.n_words``).  The trained model stays in memory
  (OpenNMT-py: a checkpoint in ``WORK/opennmt_T``) for ``decode``;
* ``{"op": "decode", "beam": 5, "batch": 64}``: translates ``val.de`` with the last trained
  model, timed around the toolkit's translation call (batching, encoder, beam search,
  output strings); answers seconds, sentences and the output tokens;
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
DEV = S.get("device", "cpu")  # "cpu" or "cuda" (--device of the main script)
CUDA = DEV.startswith("cuda")
torch.set_num_threads(1)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass


class Stop(Exception):
    pass


def sync() -> None:
    """Wait for queued GPU work before reading the clock (no-op on CPU)."""
    if CUDA:
        torch.cuda.synchronize()


class StepClock:
    """Timestamps at the end of every optimizer step; raises Stop at step ``steps``.  On a GPU
    the two timestamps that bound the timed steps (ends of steps ``warmup`` and ``steps``) wait
    for the GPU first; the others do not, so the toolkits' host/GPU overlap is kept."""

    def __init__(self):
        self.times: list[float] = []
        self.tokens: list[int] = []  # per step, filled by the side's counter
        self.sents: list[int] = []
        self.pending_tok = 0
        self.pending_sent = 0
        self.steps = self.warmup = 0
        self.active = False
        register_optimizer_step_post_hook(self._hook)

    def start(self, steps: int, warmup: int) -> None:
        self.times, self.tokens, self.sents = [], [], []
        self.pending_tok = self.pending_sent = 0
        self.steps, self.warmup, self.active = steps, warmup, True

    def count(self, tokens: int, sents: int) -> None:
        self.pending_tok += int(tokens)
        self.pending_sent += int(sents)

    def _hook(self, opt, args, kwargs) -> None:
        if not self.active:
            return
        if len(self.times) in (self.warmup, self.steps - 1):
            sync()
        self.times.append(time.perf_counter())
        self.tokens.append(self.pending_tok)
        self.sents.append(self.pending_sent)
        self.pending_tok = self.pending_sent = 0
        if len(self.times) >= self.steps:
            self.active = False
            raise Stop()

    def result(self, warmup: int) -> dict:
        n = len(self.times)
        assert n > warmup + 1, f"only {n} steps"
        return {"steps": n - warmup, "seconds": self.times[-1] - self.times[warmup],
                "tokens": sum(self.tokens[warmup + 1:]), "sentences": sum(self.sents[warmup + 1:])}


CLOCK = StepClock()


# --------------------------------------------------------------------------- seqkit


class Seqkit:
    def __init__(self):
        from seqkit.config import load_config

        self.out = WORK / "seqkit_run"
        overrides = [
            "task=translation", f"data.train={WORK}/train", f"data.dev={WORK}/val", "data.src_lang=de",
            "data.tgt_lang=en", "data.tokenizer=word", "data.joint_vocab=true", "data.min_freq=1",
            f"data.max_len={S['max_len']}",
            f"model.emb_dim={S['emb']}", f"model.enc_hidden={S['enc_hidden']}", f"model.dec_hidden={S['dec_hidden']}",
            "model.enc_layers=1", "model.dec_layers=1", "model.cell=lstm", "model.attention=additive",
            f"model.dropout={S['dropout']}", f"model.label_smoothing={S['label_smoothing']}",
            "model.tie_embeddings=true", "model.share_embeddings=true",
            f"train.output_dir={self.out}", f"train.max_tokens={S['max_tokens']}", "train.optimizer=adam",
            f"train.lr={S['lr']}", "train.scheduler=none", "train.warmup_steps=0",
            f"train.clip_grad_norm={S['clip']}", "train.num_threads=1", f"train.device={DEV}", "train.progress=false",
            "train.tensorboard=false", "train.checkpoint_every=null", "train.epochs=1000", "train.log_every=1000000",
            f"decode.length_penalty={S['length_penalty']}",
            *S.get("seqkit_set", []),  # --seqkit-set KEY=VALUE of the main script (ablations)
        ]
        self.cfg = load_config(S["seqkit_recipe"], overrides)
        from seqkit.tasks import get_task

        self.task = get_task("translation")(self.cfg)
        self.task.build_state()
        self.examples, self.lengths, self.collate = self.task.training_data()
        self.model = None

    def info(self) -> dict:
        import seqkit

        m = self.task.build_model()
        return {"version": getattr(seqkit, "__version__", "?"), "torch": torch.__version__,
                "params": sum(p.numel() for p in m.parameters()), "vocab": len(self.task.src_vocab)}

    def train(self, steps: int, warmup: int, tag: str) -> dict:
        from seqkit.train.trainer import Trainer, configure_process, seed_everything

        configure_process(self.cfg.train)  # as Trainer.fit does
        seed_everything(S["seed"])
        model = self.task.build_model()
        fwd = model.forward

        def counted(batch):
            out = fwd(batch)
            CLOCK.count(out["n"], batch["src"].size(0))
            return out

        model.forward = counted
        trainer = Trainer(model, self.cfg.train, self.examples, self.lengths, self.collate, evaluate=None,
                          log=lambda s: None)
        CLOCK.start(steps, warmup)
        try:
            trainer._loop(NullLog())
        except Stop:
            pass
        del model.forward
        self.model = model.eval()
        return CLOCK.result(warmup)

    def decode(self, beam: int, batch: int, fixed_len: int | None) -> dict:
        self.task.cfg.decode.batch_size = batch
        _, items, _ = self.task._dev(self.cfg.data.dev, "data.dev")
        t0 = time.perf_counter()
        if fixed_len is None:
            res = self.task.translate(self.model, items, beam)
            toks, hyps = [r[0]["tokens"] for r in res], [r[0]["text"] for r in res]
        else:  # TranslationTask._translate with min_len = max_len = fixed_len
            from seqkit.search import beam_search
            from seqkit.train.trainer import move_to

            task, v = self.task, self.task.tgt_vocab
            device = next(self.model.parameters()).device
            toks, hyps = [None] * len(items), [None] * len(items)
            with torch.no_grad():
                for idx in task._batches(items):
                    b = move_to(task.collate([{"src": items[i]["src"]} for i in idx]), device)
                    stepper, state = self.model.start(b)
                    out = beam_search(stepper, state, beam=beam, bos=v.bos_id, eos=v.eos_id, max_len=fixed_len,
                                      min_len=fixed_len, length_penalty=S["length_penalty"],
                                      cuda_graph=task.cfg.decode.cuda_graph)
                    for j, i in enumerate(idx):
                        toks[i] = out[j][0].tokens
                        hyps[i] = task._detok(toks[i], None)
        sync()
        sec = time.perf_counter() - t0
        return {"seconds": sec, "sentences": len(items), "out_tokens": sum(len(t) for t in toks), "hyps": hyps}


# --------------------------------------------------------------------------- JoeyNMT


class Joey:
    def __init__(self):
        self.dir = WORK / "joeynmt_run"
        self.model = None

    def cfg(self, tag: str) -> dict:
        voc = {"level": "word", "lowercase": False, "voc_min_freq": 1, "max_length": S["max_len"],
               "min_length": 1, "tokenizer_type": "none", "voc_file": str(WORK / "joeynmt.vocab")}
        return {
            "name": "bench",
            "model_dir": str(self.dir / tag),
            "joeynmt_version": "2.3.0",
            "use_cuda": CUDA,
            "fp16": False,
            "random_seed": S["seed"],
            "data": {
                "train": str(WORK / "train"), "dev": str(WORK / "val"),
                "src": {"lang": "de", **voc}, "trg": {"lang": "en", **voc},
                "dataset_type": "plain",
            },
            "testing": {"n_best": 1, "beam_size": 5, "beam_alpha": S["length_penalty"], "batch_size": 64,
                        "batch_type": "sentence", "max_output_length": -1, "eval_metrics": ["bleu"],
                        "sacrebleu_cfg": {"tokenize": "13a"}},
            "training": {
                "optimizer": "adam", "learning_rate": S["lr"], "adam_betas": [0.9, 0.999],
                # constant lr (a StepLR that never steps down); its plateau scheduler passes
                # verbose=, which torch 2.11's ReduceLROnPlateau no longer takes
                "scheduling": "decaying", "decaying_step_size": 10 ** 6,
                "clip_grad_norm": S["clip"], "batch_size": S["max_tokens"], "batch_type": "token",
                "normalization": "tokens", "label_smoothing": S["label_smoothing"], "epochs": 1000,
                "validation_freq": 10 ** 9, "logging_freq": 10 ** 9, "overwrite": True, "shuffle": True, "print_valid_sents": [], "keep_best_ckpts": 1,
                "num_workers": 0, "eval_metric": ["bleu"], "early_stopping_metric": "loss",
            },
            "model": {
                "initializer": "xavier_uniform", "embed_initializer": "xavier_uniform", "bias_initializer": "zeros",
                "init_gain": 1.0, "embed_init_gain": 1.0,
                "tied_embeddings": True, "tied_softmax": True,
                "encoder": {"type": "recurrent", "rnn_type": "lstm", "hidden_size": S["enc_hidden"],
                            "bidirectional": True, "num_layers": 1, "dropout": S["dropout"],
                            "embeddings": {"embedding_dim": S["emb"], "scale": False}},
                "decoder": {"type": "recurrent", "rnn_type": "lstm", "hidden_size": S["dec_hidden"],
                            "num_layers": 1, "dropout": S["dropout"], "hidden_dropout": S["dropout"],
                            "attention": "bahdanau", "input_feeding": True, "init_hidden": "bridge",
                            "embeddings": {"embedding_dim": S["emb"], "scale": False}},
            },
        }

    def _prepare(self, tag: str):
        import logging

        from joeynmt.config import parse_global_args
        from joeynmt.prediction import prepare

        logging.disable(logging.CRITICAL)
        cfg = self.cfg(tag)
        (self.dir / tag).mkdir(parents=True, exist_ok=True)
        args = parse_global_args(cfg, rank=0, mode="train")
        model, train_data, dev_data, _ = prepare(args, rank=0, mode="train")
        return cfg, args, model, train_data, dev_data

    def info(self) -> dict:
        import joeynmt

        _, _, model, _, _ = self._prepare("info")
        return {"version": joeynmt.__version__, "torch": torch.__version__,
                "params": sum(p.numel() for p in model.parameters()), "vocab": len(model.src_vocab)}

    def train(self, steps: int, warmup: int, tag: str) -> dict:
        from joeynmt.config import set_validation_args
        from joeynmt.training import TrainManager

        cfg, args, model, train_data, dev_data = self._prepare(tag)
        trainer = TrainManager(model=model, model_dir=args.model_dir, device=args.device, n_gpu=args.n_gpu, rank=0,
                               num_workers=0, autocast=args.autocast, seed=args.seed, train_args=args.train,
                               dev_args=set_validation_args(args.test))
        step = trainer._train_step

        def counted(batch):
            CLOCK.count(batch.ntokens, batch.nseqs)
            return step(batch)

        trainer._train_step = counted
        CLOCK.start(steps, warmup)
        try:
            trainer.train_and_validate(train_data=train_data, valid_data=dev_data)
        except Stop:
            pass
        torch.set_num_threads(1)
        self.model, self.dev_data, self.args = model.eval(), dev_data, args
        return CLOCK.result(warmup)

    def decode(self, beam: int, batch: int, fixed_len: int | None) -> dict:
        from joeynmt.config import set_validation_args
        from joeynmt.prediction import predict

        dev_args = set_validation_args(self.args.test)._replace(
            beam_size=beam, batch_size=batch, batch_type="sentence", return_prob="none", eval_metrics=[],
            beam_alpha=S["length_penalty"], n_best=1)
        if fixed_len is not None:
            dev_args = dev_args._replace(min_output_length=fixed_len, max_output_length=fixed_len)
        t0 = time.perf_counter()
        out = predict(model=self.model, data=self.dev_data, device=self.args.device, n_gpu=self.args.n_gpu,
                      compute_loss=False, normalization="none", num_workers=0, args=dev_args,
                      autocast={"device_type": self.args.device.type, "enabled": False})
        sync()
        sec = time.perf_counter() - t0
        hyps = out[2]
        return {"seconds": sec, "sentences": len(hyps), "out_tokens": sum(len(h.split()) for h in hyps),
                "hyps": hyps}


# --------------------------------------------------------------------------- OpenNMT-py


class ONMT:
    def __init__(self):
        self.dir = WORK / "opennmt_run"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ckpt = None

    def opts(self, tag: str, steps: int) -> list[str]:
        d = self.dir / tag
        d.mkdir(parents=True, exist_ok=True)
        cfg = {
            "save_data": str(d / "data"), "overwrite": True,
            "src_vocab": str(WORK / "opennmt.vocab"), "share_vocab": True,
            "src_words_min_frequency": 1, "tgt_words_min_frequency": 1, "vocab_size_multiple": 1,
            "data": {"corpus_1": {"path_src": str(WORK / "train.de"), "path_tgt": str(WORK / "train.en"),
                                  "transforms": ["filtertoolong"]}},
            "src_seq_length": S["max_len"], "tgt_seq_length": S["max_len"],
            "model_type": "text", "encoder_type": "brnn", "decoder_type": "rnn", "rnn_type": "LSTM",
            "enc_layers": 1, "dec_layers": 1, "word_vec_size": S["emb"],
            "enc_hid_size": 2 * S["enc_hidden"], "dec_hid_size": S["dec_hidden"],
            "global_attention": "mlp", "input_feed": 1, "bridge": True,
            "share_embeddings": True, "share_decoder_embeddings": True,
            "dropout": [S["dropout"]], "attention_dropout": [0.0], "label_smoothing": S["label_smoothing"],
            "optim": "adam", "learning_rate": S["lr"], "adam_beta1": 0.9, "adam_beta2": 0.999,
            "decay_method": "none", "max_grad_norm": S["clip"], "param_init": 0.0, "param_init_glorot": True,
            "batch_type": "tokens", "batch_size": S["max_tokens"], "batch_size_multiple": 1,
            "normalization": "tokens", "accum_count": [1], "train_steps": steps + 1000,
            "valid_steps": 10 ** 9, "save_checkpoint_steps": 10 ** 9, "report_every": 10 ** 6,
            "save_model": str(d / "model"), "seed": S["seed"], "world_size": 1, "gpu_ranks": [0] if CUDA else [],
            "num_workers": 0, "bucket_size": 32768, "log_file": str(d / "train.log"),
        }
        import yaml

        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
        return ["-config", str(d / "config.yaml")]

    def info(self) -> dict:
        import onmt

        return {"version": onmt.__version__, "torch": torch.__version__}

    def train(self, steps: int, warmup: int, tag: str) -> dict:
        import onmt.trainer
        from onmt.bin.train import _get_parser
        from onmt.train_single import main as single_main
        from onmt.utils.parse import ArgumentParser

        parser = _get_parser()
        opt, _ = parser.parse_known_args(self.opts(tag, steps))
        # what onmt.bin.train.train does before single_main on a CPU
        from onmt.utils.logging import init_logger
        from onmt.utils.misc import set_random_seed

        init_logger(opt.log_file)
        ArgumentParser.validate_train_opts(opt)
        ArgumentParser.update_model_opts(opt)
        ArgumentParser.validate_model_opts(opt)
        set_random_seed(opt.seed, False)
        T = onmt.trainer.Trainer
        orig_ga = T._gradient_accumulation
        box = {}

        def ga(trainer, true_batches, normalization, total_stats, report_stats):
            box["model"] = trainer.model
            box["trainer"] = trainer
            return orig_ga(trainer, true_batches, normalization, total_stats, report_stats)

        def counted(trainer, true_batches, normalization, total_stats, report_stats):
            nw = sum(int(b["tgt"][:, 1:, 0].ne(trainer.train_loss.padding_idx).sum()) for b in true_batches)
            CLOCK.count(nw, sum(b["tgt"].size(0) for b in true_batches))
            return ga(trainer, true_batches, normalization, total_stats, report_stats)

        T._gradient_accumulation = counted
        import onmt.models.model_saver as ms

        saver = ms.ModelSaver._save
        box["saver"] = None
        orig_build = ms.build_model_saver

        def build_saver(*a, **k):
            s = orig_build(*a, **k)
            box["saver"] = s
            return s

        import onmt.train_single as ts

        ts.build_model_saver = build_saver
        CLOCK.start(steps, warmup)
        try:
            single_main(opt, 0 if CUDA else -1)
        except Stop:
            pass
        finally:
            T._gradient_accumulation = orig_ga
            ts.build_model_saver = orig_build
        torch.set_num_threads(1)
        r = CLOCK.result(warmup)
        r["params"] = sum(p.numel() for p in box["model"].parameters())
        r["vocab"] = box["model"].decoder.embeddings.word_lut.weight.size(0)
        # keep the model for decoding: a checkpoint of the in-memory weights
        s = box["saver"]
        if s is not None:
            self.ckpt = saver(s, steps, box["model"])[0]
        return r

    def decode(self, beam: int, batch: int, fixed_len: int | None) -> dict:
        from onmt.inference_engine import InferenceEnginePY
        from onmt.opts import translate_opts
        from onmt.utils.parse import ArgumentParser

        out = self.dir / "val.hyp"
        p = ArgumentParser(description="translate.py")
        translate_opts(p)
        opt = p.parse_args(["-model", str(self.ckpt), "-src", str(WORK / "val.de"), "-output", str(out),
                            "-beam_size", str(beam), "-batch_size", str(batch), "-batch_type", "sents",
                            "-length_penalty", "wu", "-alpha", str(S["length_penalty"]), "-n_best", "1",
                            "-max_length", str(fixed_len or S["onmt_max_length"]),
                            "-min_length", str(fixed_len or 0), "-gpu", "0" if CUDA else "-1", "-seed", str(S["seed"])])
        ArgumentParser.validate_translate_opts(opt)
        ArgumentParser._get_all_transform_translate(opt)
        ArgumentParser._validate_transforms_opts(opt)
        ArgumentParser.validate_translate_opts_dynamic(opt)
        engine = InferenceEnginePY(opt)
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        engine.infer_file()
        sync()
        sec = time.perf_counter() - t0
        engine.terminate()
        hyps = out.read_text(encoding="utf-8").splitlines()
        return {"seconds": sec, "sentences": len(hyps), "out_tokens": sum(len(h.split()) for h in hyps),
                "hyps": hyps}


def main() -> None:
    side = {"seqkit": Seqkit, "joeynmt": Joey, "opennmt": ONMT}[SIDE]()

    def handle(cmd: dict) -> dict:
        op = cmd["op"]
        if op == "info":
            res = side.info()
        elif op == "train":
            res = side.train(cmd["steps"], cmd["warmup"], cmd.get("tag", "t"))
        elif op == "decode":
            res = side.decode(cmd["beam"], cmd["batch"], cmd.get("fixed_len"))
        else:
            res = {"error": f"unknown op {op}"}
        return {**res, "threads": torch.get_num_threads()}

    serve(handle)


if __name__ == "__main__":
    main()
