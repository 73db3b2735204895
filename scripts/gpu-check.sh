#!/usr/bin/env bash
# Checks the GPU collector and the GPU cost line on a machine with a real NVIDIA GPU:
# the GPU tests (which skip without NVML), then the agent's /metrics while a CUDA
# program (PyTorch) loads the GPU. Writes what it saw under ${OUT:-gpu-check}.
# Where the project is not installed, put it on PYTHONPATH with its dependencies.
set -u
out=${OUT:-gpu-check}
mkdir -p "$out"
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,uuid,pci.bus_id,memory.total,power.limit --format=csv | tee "$out/smi.txt"
"$py" -m pytest -q -p no:cacheprovider tests/collector/test_gpu.py tests/cost/test_gpu.py \
  2>&1 | tee "$out/pytest.txt" | tail -15

# A real GPU load, then the agent's view of it.
"$py" - <<'PY' >"$out/load.txt" 2>&1 &
import time, torch
x = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
keep = torch.empty(6 * 2**30, dtype=torch.uint8, device="cuda")  # 6 GiB held
end = time.time() + 40
n = 0
while time.time() < end:
    y = x @ x
    n += 1
    if n % 200 == 0:
        torch.cuda.synchronize()
print("matmuls", n)
PY
load=$!
app=$(mktemp -d); log=$(realpath "$out")/agent.log
printf '[collectors.gpu]\ninterval = 1\n' >"$app/fastmango.toml"
(cd "$app" && exec "$py" -m fastmango.cli agent --port 18931 >"$log" 2>&1) &
agent=$!
for _ in $(seq 60); do curl -sf http://127.0.0.1:18931/healthz >/dev/null && break; sleep 0.5; done; sleep 8
"$py" - "$out" <<'PY'
import json, statistics, sys, time, httpx
from fastmango.collector.gpu import GpuCollector
out = sys.argv[1]
text = httpx.get("http://127.0.0.1:18931/metrics").text
open(f"{out}/metrics.txt", "w").write(text)
lines = [l for l in text.splitlines() if l.startswith(("DCGM_", "fastmango_gpu"))]
print("\n".join(lines[:60]))
c = GpuCollector(); c.start()
times = []
for _ in range(20):
    t = time.perf_counter(); c.collect(); times.append((time.perf_counter() - t) * 1000)
print("collect() ms: median %.2f max %.2f" % (statistics.median(times), max(times)))
print(json.dumps(c.details(), default=str)[:2000])
c.close()
PY
kill $agent; wait $load; cat "$out/load.txt"; tail -5 "$log"
