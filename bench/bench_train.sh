#!/bin/sh
# GRPO step time split (rollout, reward, reference log-probs, policy log-probs, update, logging, checkpoint)
# and rollout / training tokens/s, for the tiny and small models, read back from each run's run.db.
# The reference model is on (beta 0.04) so that its forward is timed too.
set -e
BUILD=${1:-build}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
run() { # name model steps prompts group max_new micro
  ./grpo train configs/grpo/tiny.json --out "$T/$1" --set quiet=true --set model="$2" --set steps="$3" \
    --set rollout.prompts_per_step="$4" --set rollout.group_size="$5" --set rollout.max_new_tokens="$6" \
    --set grpo.micro_batch="$7" --set grpo.beta=0.04 --set save_every=0 2>/dev/null
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); OMP_NUM_THREADS=${OMP_NUM_THREADS:-all cores}"
run tiny configs/model/tiny.json 12 8 8 48 64
run small configs/model/small.json 4 4 8 64 8
printf '%-6s %8s %8s %8s %9s %9s %8s %6s %6s %12s %12s\n' model "step s" rollout reward reference "policy lp" update log ckpt \
  "rollout t/s" "train t/s"
for m in tiny small; do
  # the first step warms caches up; the mean is over the rest
  sqlite3 -separator ' ' "$T/$m/run.db" "SELECT
      printf('%.3f', avg(json_extract(metrics_json, '\$.\"time/step\"'))),
      printf('%.1f%%', 100*avg(json_extract(metrics_json, '\$.\"time/rollout\"') / json_extract(metrics_json, '\$.\"time/step\"'))),
      printf('%.1f%%', 100*avg(json_extract(metrics_json, '\$.\"time/reward\"') / json_extract(metrics_json, '\$.\"time/step\"'))),
      printf('%.1f%%', 100*avg(json_extract(metrics_json, '\$.\"time/reference\"') / json_extract(metrics_json, '\$.\"time/step\"'))),
      printf('%.1f%%', 100*avg(json_extract(metrics_json, '\$.\"time/policy_logprobs\"') / json_extract(metrics_json, '\$.\"time/step\"'))),
      printf('%.1f%%', 100*avg(json_extract(metrics_json, '\$.\"time/update\"') / json_extract(metrics_json, '\$.\"time/step\"'))),
      printf('%.1f%%', 100*avg(json_extract(metrics_json, '\$.\"time/log\"') / json_extract(metrics_json, '\$.\"time/step\"'))),
      printf('%.1f%%', 100*avg(coalesce(json_extract(metrics_json, '\$.\"time/checkpoint\"'), 0) / json_extract(metrics_json, '\$.\"time/step\"'))),
      printf('%.0f', avg(rollout_tok_s)), printf('%.0f', avg(train_tok_s))
    FROM steps WHERE step > 1" | { read a b c d e f g h i j; printf '%-6s %8s %8s %8s %9s %9s %8s %6s %6s %12s %12s\n' "$m" "$a" "$b" "$c" "$d" "$e" "$f" "$g" "$h" "$i" "$j"; }
done
echo "(rollout t/s: completion tokens per rollout second; train t/s: padded prompt+completion tokens per second of forward + backward + AdamW)"
