"""Stage ``doc_qa``: (d) document QA per replica router at real size (128k-token documents, two replicas)."""

from __future__ import annotations

import argparse
import os

from benchmarks.common import document_qa
from benchmarks.gpu.checkpoints import ensure_checkpoints
from benchmarks.gpu.stage_log import StageLog


def stage_doc_qa(args, log: StageLog) -> None:
    os.environ["LONGCTX_GPU_MODELS"] = str(args.models)
    ensure_checkpoints(args.models, reduced=False)
    bench_args = argparse.Namespace(
        documents=args.documents, questions=args.questions, document_tokens=args.document_tokens,
        concurrency=2, data_dir="/tmp/longctx-data/doc-qa", profile=args.doc_qa_profile)
    rows = document_qa.run(bench_args, args.routers.split(","),
                           on_result=lambda row: log.append("results", row))
    log.put("done", len(rows))
