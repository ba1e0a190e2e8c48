#!/usr/bin/env bash
# Leave-one-speaker-out on the four shared FSDD speakers: train one model per held-out speaker and
# decode its dev set three ways: CTC prefix beam search; the same with the digit lexicon (a unigram
# over the ten digit words, built from the fold's training transcripts); and closed-vocabulary
# decoding (decode.method ctc_closed: the digit word of highest CTC likelihood, digits.txt). Prints
# the digit accuracy (sentence accuracy: each utterance is one digit) of each.
# Usage: [JOBS=2] [SELF_TRAIN=1] bash recipes/asr/fsdd/run_folds.sh [config] [extra key=value overrides ...]
#   JOBS: folds trained at once (default 1; 2 on a 2-core machine, with train.num_threads=1)
#   OUT: output prefix (default exp/asr_fsdd): OUT_<speaker>/ holds dev_metrics_{beam,lexicon,closed}.json
#        and dev_{beam,lexicon,closed}.hyp, OUT_<speaker>.log the training log
#   SELF_TRAIN=N: then N more models per fold, each trained from scratch on the training speakers
#        plus the held-out speaker's recordings labelled by the previous model's closed-vocabulary
#        output (pseudo_label.py; the held-out transcripts are never read), in OUT_<speaker>_st/,
#        OUT_<speaker>_st2/, ...
#   A stage whose dev_metrics_closed.json exists is reused (a killed run resumes there); FRESH=1
#   retrains everything.
set -euo pipefail
cd "$(dirname "$0")/../../.."
cfg=${1:-recipes/asr/fsdd/config.yaml}
shift || true
jobs=${JOBS:-1}
prefix=${OUT:-exp/asr_fsdd}
mkdir -p exp/fsdd_lm

# a stage is finished when its last decoding is written (FRESH=1: never)
finished() { [ "${FRESH:-0}" != 1 ] && [ -f "$1/dev_metrics_closed.json" ]; }

fold() {
    local spk=$1 out=${prefix}_$1
    shift
    # the lexicon: the fold's training transcripts (150 of each digit), a unigram ARPA
    python -c "import json,sys; [print(json.loads(l)['text']) for l in open(sys.argv[1])]" \
        data/fsdd/heldout_$spk/train.jsonl > exp/fsdd_lm/train_text_$spk.txt
    seqkit ngram --order 1 --train exp/fsdd_lm/train_text_$spk.txt --arpa exp/fsdd_lm/digits1_$spk.arpa \
        > exp/fsdd_lm/digits1_$spk.log 2>&1
    train_and_decode "$spk" "$out" data/fsdd/heldout_$spk/train.jsonl "$@"
    local prev=$out next
    for ((r = 1; r <= ${SELF_TRAIN:-0}; r++)); do
        next=${out}_st$([ $r -gt 1 ] && echo $r || true)
        if ! finished $next; then
            mkdir -p $next
            python recipes/asr/fsdd/pseudo_label.py --train data/fsdd/heldout_$spk/train.jsonl \
                --dev data/fsdd/heldout_$spk/dev.jsonl --hyp $prev/dev_closed.hyp --out $next/self_train.jsonl \
                > $next.pseudo.log
        fi
        train_and_decode "$spk" $next $next/self_train.jsonl "$@"
        prev=$next
    done
}

# train on manifest $3, then decode the held-out speaker's dev set the three ways
train_and_decode() {
    local spk=$1 out=$2 train=$3
    shift 3
    local data=(data.train=$train data.dev=data/fsdd/heldout_$spk/dev.jsonl train.output_dir=$out)
    if finished $out; then
        echo "$out: finished before, reused (FRESH=1 retrains)"
        return
    fi
    seqkit train "$cfg" --fresh "${data[@]}" train.progress=false "$@" > $out.log 2>&1
    keep() { cp $out/dev_metrics.json $out/dev_metrics_$1.json; cp $out/dev.hyp $out/dev_$1.hyp; }
    keep beam
    seqkit evaluate "$cfg" "${data[@]}" "$@" --ckpt $out/best.pt decode.lm=exp/fsdd_lm/digits1_$spk.arpa \
        decode.lm_weight=1.0 >> $out.log 2>&1
    keep lexicon
    seqkit evaluate "$cfg" "${data[@]}" "$@" --ckpt $out/best.pt decode.method=ctc_closed \
        decode.candidates=recipes/asr/fsdd/digits.txt >> $out.log 2>&1
    keep closed
}

for spk in george jackson nicolas yweweler; do
    fold "$spk" "$@" &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 2; done
done
wait
python - "$prefix" "${SELF_TRAIN:-0}" <<'PY'
import json
import sys

prefix, rounds = sys.argv[1], int(sys.argv[2])
kinds = ("beam", "lexicon", "closed")
for suffix in ["", "_st"][: rounds + 1] + [f"_st{r}" for r in range(2, rounds + 1)]:
    accs = []
    for spk in ("george", "jackson", "nicolas", "yweweler"):
        m = {k: json.load(open(f"{prefix}_{spk}{suffix}/dev_metrics_{k}.json")) for k in kinds}
        accs.append([m[k]["sentence_accuracy"] for k in kinds])
        print(f"{spk}{suffix}: digit accuracy {accs[-1][0]:.4f} (ctc_beam, beam {m['beam']['beam']}), "
              f"{accs[-1][1]:.4f} with the digit lexicon, {accs[-1][2]:.4f} closed-vocabulary "
              f"({m['closed']['utterances']} utterances)")
    mean = [sum(a[i] for a in accs) / len(accs) for i in range(3)]
    print(f"mean{suffix}: {mean[0]:.4f} beam, {mean[1]:.4f} lexicon, {mean[2]:.4f} closed")
PY
