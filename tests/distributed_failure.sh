#!/usr/bin/env bash
# A rank that fails must stop every rank: non-zero exit, its error printed, no hang (timeout).
#   distributed_failure.sh MPIRUN PROGRAM
set -uo pipefail
mpirun=$1
program=$2
status=0
check() {  # mode, text expected on stderr
  local out rc
  out=$(timeout 60 "$mpirun" --oversubscribe --allow-run-as-root -np 2 "$program" "$1" 2>&1)
  rc=$?
  if [ "$rc" -eq 124 ]; then
    echo "FAIL $1: still running after 60 s (a rank waits forever)"; status=1; return
  fi
  if [ "$rc" -eq 0 ]; then
    echo "FAIL $1: exit status 0"; status=1
  fi
  if ! grep -qF -- "$2" <<< "$out"; then
    echo "FAIL $1: expected '$2' in the output:"; echo "$out"; status=1; return
  fi
  if grep -q "finished" <<< "$out"; then
    echo "FAIL $1: a rank went on to finish:"; echo "$out"; status=1; return
  fi
  echo "ok $1: exit status $rc, '$2'"
}
check throw "distributed_failure: rank 1 of 2: error: rank 1 fails on purpose at step 1"
check file "distributed_failure: rank 1 of 2: error: "
check file "/nonexistent/model.safetensors"
check shapes "the tensors of rank 1 differ from rank 0's"
exit $status
