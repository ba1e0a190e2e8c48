#!/usr/bin/env bash
# Leave-one-speaker-out on the four shared FSDD speakers: train one model per held-out speaker,
# decode its dev set with CTC prefix beam search, then again with the digit lexicon (a unigram
# over the ten digit words, built from the fold's training transcripts), and print the digit
# accuracy (sentence accuracy: each utterance is one digit) of both.
# Usage: [JOBS=2] bash recipes/asr/fsdd/run_folds.sh [config] [extra key=value overrides ...]
#   JOBS: folds trained at once (default 1; 2 on a 2-core machine, with train.num_threads=1)
#   OUT: output prefix (default exp/asr_fsdd): OUT_<speaker>/ holds dev_metrics_beam.json and
#        dev_metrics.json (with the lexicon), OUT_<speaker>.log the training log
set -euo pipefail
cd "$(dirname "$0")/../../.."
cfg=${1:-recipes/asr/fsdd/config.yaml}
shift || true
jobs=${JOBS:-1}
prefix=${OUT:-exp/asr_fsdd}
mkdir -p exp/fsdd_lm

fold() {
    local spk=$1 out=${prefix}_$1
    shift
    local data=(data.train=data/fsdd/heldout_$spk/train.jsonl data.dev=data/fsdd/heldout_$spk/dev.jsonl
                train.output_dir=$out)
    seqkit train "$cfg" --fresh "${data[@]}" train.progress=false "$@" > $out.log 2>&1
    cp $out/dev_metrics.json $out/dev_metrics_beam.json
    # the lexicon: the fold's training transcripts (150 of each digit), a unigram ARPA
    python -c "import json,sys; [print(json.loads(l)['text']) for l in open(sys.argv[1])]" \
        data/fsdd/heldout_$spk/train.jsonl > exp/fsdd_lm/train_text_$spk.txt
    seqkit ngram --order 1 --train exp/fsdd_lm/train_text_$spk.txt --arpa exp/fsdd_lm/digits1_$spk.arpa \
        >> $out.log 2>&1
    seqkit evaluate "$cfg" "${data[@]}" "$@" --ckpt $out/best.pt decode.lm=exp/fsdd_lm/digits1_$spk.arpa \
        decode.lm_weight=1.0 >> $out.log 2>&1
}

for spk in george jackson nicolas yweweler; do
    fold "$spk" "$@" &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 2; done
done
wait
python - "$prefix" <<'PY'
import json
import sys

prefix = sys.argv[1]
accs = {}
for spk in ("george", "jackson", "nicolas", "yweweler"):
    beam = json.load(open(f"{prefix}_{spk}/dev_metrics_beam.json"))
    lex = json.load(open(f"{prefix}_{spk}/dev_metrics.json"))
    accs[spk] = (beam["sentence_accuracy"], lex["sentence_accuracy"])
    print(f"{spk}: digit accuracy {beam['sentence_accuracy']:.4f} ({beam['method']}, beam {beam['beam']}), "
          f"{lex['sentence_accuracy']:.4f} with the digit lexicon  ({lex['utterances']} utterances)")
print("mean: {:.4f}, {:.4f} with the lexicon".format(*(sum(a[i] for a in accs.values()) / 4 for i in (0, 1))))
PY
