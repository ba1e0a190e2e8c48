#!/usr/bin/env bash
# Leave-one-speaker-out on the four shared FSDD speakers: train one model per held-out speaker and
# decode its dev set three ways: CTC prefix beam search; the same with the digit lexicon (a unigram
# over the ten digit words, built from the fold's training transcripts); and closed-vocabulary
# decoding (decode.method ctc_closed: the digit word of highest CTC likelihood, digits.txt). Prints
# the digit accuracy (sentence accuracy: each utterance is one digit) of each.
# Usage: [JOBS=2] [SEEDS=3] [SELF_TRAIN=1] [KEEP="0.6 0.8 1"] [ASSIGN="argmax balanced"] bash recipes/asr/fsdd/run_folds.sh [config] [overrides ...]
#   JOBS: folds trained at once (default 1; 2 on a 2-core machine, with train.num_threads=1)
#   OUT: output prefix (default exp/asr_fsdd): OUT_<speaker>/ holds dev_metrics_{beam,lexicon,closed}.json,
#        dev_{beam,lexicon,closed}.hyp and dev_closed.scores.tsv, OUT_<speaker>.log the training log
#   SEEDS=N: N models per stage (train.seed 1..N; seed s > 1 in OUT_<speaker>_seed<s>/), and their
#        closed-vocabulary ensemble (ensemble.py: the mean log-likelihoods) in OUT_<speaker>_ens/
#   SELF_TRAIN=N: then N more stages per fold, each trained from scratch on the training speakers
#        plus the held-out speaker's recordings labelled by the previous stage's closed-vocabulary
#        output (its ensemble with SEEDS > 1; pseudo_label.py, the held-out transcripts are never
#        read), in OUT_<speaker>_st/, OUT_<speaker>_st2/, ...
#   KEEP: share of each digit's pseudo-labelled recordings kept in round 1, 2, ... (the last value
#        repeats; default 1: all), the most certain first (class-balanced self-training)
#   ASSIGN: how round 1, 2, ... labels the recordings (the last value repeats): argmax (default),
#        each recording its best digit, or balanced, the whole set jointly with every digit labelling
#        equally many recordings (pseudo_label.py --balanced)
#   A model whose dev_metrics_beam.json exists is not retrained, and a decoding already written is
#   not redone (a killed run resumes there); FRESH=1 retrains everything.
set -euo pipefail
cd "$(dirname "$0")/../../.."
cfg=${1:-recipes/asr/fsdd/config.yaml}
shift || true
jobs=${JOBS:-1}
seeds=${SEEDS:-1}
read -ra keep <<< "${KEEP:-1}"
read -ra assign <<< "${ASSIGN:-argmax}"
prefix=${OUT:-exp/asr_fsdd}
mkdir -p exp/fsdd_lm "$(dirname "$prefix")"

# round_value LIST R: the R-th value (1-based) of the array named LIST, or its last one past the end
round_value() {
    local -n list=$1
    local i=$(($2 <= ${#list[@]} ? $2 - 1 : ${#list[@]} - 1))
    echo "${list[$i]}"
}

fold() {
    local spk=$1 out=${prefix}_$1
    shift
    # the lexicon: the fold's training transcripts (150 of each digit), a unigram ARPA
    python -c "import json,sys; [print(json.loads(l)['text']) for l in open(sys.argv[1])]" \
        data/fsdd/heldout_$spk/train.jsonl > exp/fsdd_lm/train_text_$spk.txt
    seqkit ngram --order 1 --train exp/fsdd_lm/train_text_$spk.txt --arpa exp/fsdd_lm/digits1_$spk.arpa \
        > exp/fsdd_lm/digits1_$spk.log 2>&1
    stage "$spk" "$out" data/fsdd/heldout_$spk/train.jsonl "$@"
    local prev=$out next k mode flags
    if [ "$seeds" -gt 1 ]; then prev=${out}_ens; fi
    for ((r = 1; r <= ${SELF_TRAIN:-0}; r++)); do
        next=${out}_st$([ $r -gt 1 ] && echo $r || true)
        k=$(round_value keep $r)
        mode=$(round_value assign $r)
        case $mode in
            argmax) flags=() ;;
            balanced) flags=(--balanced) ;;
            *) echo "ASSIGN: argmax or balanced, not $mode" >&2; exit 2 ;;
        esac
        if [ "${FRESH:-0}" = 1 ] || [ ! -f $next/self_train.jsonl ]; then
            mkdir -p $next
            python recipes/asr/fsdd/pseudo_label.py --train data/fsdd/heldout_$spk/train.jsonl \
                --dev data/fsdd/heldout_$spk/dev.jsonl --scores $prev/dev_closed.scores.tsv --keep $k \
                "${flags[@]}" --out $next/self_train.jsonl > $next.pseudo.log
        fi
        stage "$spk" $next $next/self_train.jsonl "$@"
        prev=$next
        if [ "$seeds" -gt 1 ]; then prev=${next}_ens; fi
    done
}

# SEEDS models trained on manifest $3 (seed 1 in $2, seed s in $2_seed<s>), and their ensemble in $2_ens
stage() {
    local spk=$1 out=$2 train=$3
    shift 3
    local s dir extra scores=()
    for ((s = 1; s <= seeds; s++)); do
        dir=$out extra=()
        if [ $s -gt 1 ]; then dir=${out}_seed$s extra=(train.seed=$s); fi
        train_and_decode "$spk" $dir "$train" "$@" "${extra[@]}"
        scores+=($dir/dev_closed.scores.tsv)
    done
    if [ "$seeds" -gt 1 ]; then
        python recipes/asr/fsdd/ensemble.py --scores "${scores[@]}" --ref $out/dev.ref --out ${out}_ens \
            >> $out.log
    fi
}

# train on manifest $3, then decode the held-out speaker's dev set the three ways
train_and_decode() {
    local spk=$1 out=$2 train=$3
    shift 3
    local data=(data.train=$train data.dev=data/fsdd/heldout_$spk/dev.jsonl train.output_dir=$out)
    keep_as() { cp $out/dev_metrics.json $out/dev_metrics_$1.json; cp $out/dev.hyp $out/dev_$1.hyp; }
    if [ "${FRESH:-0}" = 1 ] || [ ! -f $out/dev_metrics_beam.json ]; then
        rm -f $out/dev_metrics_*.json $out/dev_closed.scores.tsv
        seqkit train "$cfg" --fresh "${data[@]}" train.progress=false "$@" > $out.log 2>&1
        keep_as beam
    else
        echo "$out: trained before, reused (FRESH=1 retrains)"
    fi
    if [ ! -f $out/dev_metrics_lexicon.json ]; then
        seqkit evaluate "$cfg" "${data[@]}" "$@" --ckpt $out/best.pt decode.lm=exp/fsdd_lm/digits1_$spk.arpa \
            decode.lm_weight=1.0 >> $out.log 2>&1
        keep_as lexicon
    fi
    if [ ! -f $out/dev_closed.scores.tsv ]; then
        seqkit evaluate "$cfg" "${data[@]}" "$@" --ckpt $out/best.pt decode.method=ctc_closed \
            decode.candidates=recipes/asr/fsdd/digits.txt >> $out.log 2>&1
        keep_as closed
        cp $out/dev.scores.tsv $out/dev_closed.scores.tsv
    fi
}

for spk in george jackson nicolas yweweler; do
    fold "$spk" "$@" &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 2; done
done
wait
python - "$prefix" "${SELF_TRAIN:-0}" "$seeds" <<'PY'
import json
import sys

prefix, rounds, seeds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
kinds = ("beam", "lexicon", "closed")
for suffix in ["", "_st"][: rounds + 1] + [f"_st{r}" for r in range(2, rounds + 1)]:
    accs, ens = [], []
    for spk in ("george", "jackson", "nicolas", "yweweler"):
        m = {k: json.load(open(f"{prefix}_{spk}{suffix}/dev_metrics_{k}.json")) for k in kinds}
        accs.append([m[k]["sentence_accuracy"] for k in kinds])
        line = (f"{spk}{suffix}: digit accuracy {accs[-1][0]:.4f} (ctc_beam, beam {m['beam']['beam']}), "
                f"{accs[-1][1]:.4f} with the digit lexicon, {accs[-1][2]:.4f} closed-vocabulary "
                f"({m['closed']['utterances']} utterances)")
        if seeds > 1:
            e = json.load(open(f"{prefix}_{spk}{suffix}_ens/dev_metrics_closed.json"))
            ens.append(e["sentence_accuracy"])
            line += (f"; ensemble of {seeds} seeds {ens[-1]:.4f} closed-vocabulary, "
                     f"{e['balanced_accuracy']:.4f} with balanced assignment")
        print(line)
    mean = [sum(a[i] for a in accs) / len(accs) for i in range(3)]
    line = f"mean{suffix}: {mean[0]:.4f} beam, {mean[1]:.4f} lexicon, {mean[2]:.4f} closed"
    if ens:
        line += f"; ensemble {sum(ens) / len(ens):.4f} closed"
    print(line)
PY
