#!/bin/bash
# The CUDA path end to end on a lent GPU machine (docs/gpu.md): the CLI, the pipeline per
# compute type (gpu_bench.py), batch, the server and live. The machine has no network and
# only CUDA 13's cuBLAS, so stage first, here, in the repo root (each folder under the
# device tool's 64 MiB; .git/info/exclude ignores them):
#   .gpuA: wheels of ctranslate2==4.8.5, faster-whisper==1.2.1 and the server extra with their
#          requirements the machine lacks (fastapi, starlette, pydantic, pydantic_core,
#          pydantic-settings, python-dotenv, uvicorn, python-multipart, websockets,
#          fastapi-offline, annotated-types, annotated-doc, typing-inspection,
#          opentelemetry-api, typing_extensions, pysubs2, platformdirs, jiwer, rapidfuzz,
#          whisper-normalizer and its more-itertools, indic-numtowords, text2num)
#   .gpuB: av==18.1.0 and audio/ (en_long.flac + en_long.txt, clip0.wav, clip1.wav)
#   .gpuC: tiny-en-int8/ (malsori.finetune.ct2_export of tiny.en, quantization int8)
# then send each folder in its own call (`cp -r .gpuX/* /tmp/stage/X/`, carry [".gpuX"]),
# back to back while the machine stays warm, the last one running this script.
export PYTHONUNBUFFERED=1
S=/tmp/stage
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site $S/A/*.whl $S/B/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD/src
M=$S/C/tiny-en-int8 A=$S/B/audio
pt() { python3 -c "import json,sys; print('processing_time', round(json.load(open(sys.argv[1]))['processing_time'], 2))" "$1"; }
nvidia-smi -L
echo "== auto without cuBLAS 12: a warning, then the CPU"
timeout 120 python3 -m malsori.cli transcribe $A/clip0.wav --model $M -f txt -o /tmp/o0 2>&1 | tail -2
CUB=$(ls /usr/local/cuda-13/targets/x86_64-linux/lib/libcublas.so.13* | head -1)
mkdir -p /tmp/cub && ln -sf "$CUB" /tmp/cub/libcublas.so.12  # a check of malsori's path only
export LD_LIBRARY_PATH=/tmp/cub:$(dirname "$CUB"):$LD_LIBRARY_PATH
echo "== CLI, three processes (the first compiles the GPU code), float16, cpu"
for i in 1 2 3; do timeout 120 python3 -m malsori.cli transcribe $A/en_long.flac --model $M -f json -o /tmp/c$i >/dev/null 2>&1; pt /tmp/c$i/en_long.json; done
timeout 120 python3 -m malsori.cli transcribe $A/en_long.flac --model $M --device cpu -f json -o /tmp/p1 >/dev/null 2>&1; pt /tmp/p1/en_long.json
echo "== pipeline per compute type"
timeout 300 python3 benchmarks/gpu_bench.py $M $A
echo "== batch, then the rerun"
mkdir -p /tmp/in && cp $A/clip0.wav $A/clip1.wav /tmp/in/
for i in 1 2; do timeout 120 python3 -m malsori.cli batch /tmp/in -o /tmp/bout --model $M 2>&1 | head -2; done
echo "== server"
python3 -m malsori.cli serve --model $M --port 18100 > /tmp/serve.log 2>&1 &
SERVER=$!
for i in $(seq 60); do curl -sf localhost:18100/ready >/dev/null && break; sleep 1; done
for f in json verbose_json srt; do curl -s -F file=@$A/clip0.wav -F model=whisper-1 -F response_format=$f localhost:18100/v1/audio/transcriptions | head -c 200; echo; done
pids=(); for i in 1 2 3 4; do curl -s -m 120 -F file=@$A/clip$((i % 2)).wav -F model=whisper-1 localhost:18100/v1/audio/transcriptions -o /tmp/par$i.json & pids+=($!); done
wait "${pids[@]}"; cat /tmp/par*.json; echo
kill $SERVER; wait $SERVER; tail -3 /tmp/serve.log
echo "== live from a file"
timeout 90 python3 -m malsori.cli live --input $A/clip0.wav --model $M -o /tmp/live 2>&1 | tail -2
