{{/* The weights -------------------------------------------------------------
weights.source pvc (optionally filled by the chart's Job, weights-fill.yaml),
download (an init container per pod) or none. The hub's repositories and their
pinned revisions are weights.download.models, keyed by served model name. */}}

{{/* A model's hub entry, refusing anything but a pinned commit: a branch or a
tag can move, and the repositories' remote code (trust_remote_code) would move
with it. Args: ctx, model. */}}
{{- define "longctx.hubModel" -}}
{{- $src := get .ctx.Values.weights.download.models .model -}}
{{- if not $src -}}
{{- fail (printf "weights.download.models has no entry for model %s: add {repo: <hub repository>, revision: <40-hex commit>, sizeGi: <GiB of its files>} (docs/kubernetes.md, Pinned revisions)" .model) -}}
{{- end -}}
{{- $revision := toString ($src.revision | default "") -}}
{{- if not (regexMatch "^[0-9a-f]{40}$" $revision) -}}
{{- fail (printf "weights.download.models.%s.revision is %q: set the full 40-character commit hash of %s to download (the commit id listed at https://huggingface.co/%s/commits/main); branch and tag names move, so the chart refuses them (docs/kubernetes.md, Pinned revisions)" .model $revision $src.repo $src.repo) -}}
{{- end -}}
{{- toJson $src -}}
{{- end -}}

{{/* What a pod needs from the hub, as JSON {jobs, gi}: its own models whole,
the other models' tokenizer and config files only (an ingress replica may run
in any pod and tokenizes for every model), and the GiB that takes. Args: ctx,
models (served names this pod's pools run; empty for the head). */}}
{{- define "longctx.podWeights" -}}
{{- $ctx := .ctx -}}
{{- $cluster := include "longctx.cluster" $ctx | fromYaml -}}
{{- $dl := $ctx.Values.weights.download -}}
{{- $jobs := list -}}
{{- $gi := 1 -}}
{{- range $model := keys $cluster.models | sortAlpha -}}
{{- $src := include "longctx.hubModel" (dict "ctx" $ctx "model" $model) | fromJson -}}
{{- $whole := has $model $.models -}}
{{- if and $whole (not $src.sizeGi) -}}
{{- fail (printf "weights.download.models.%s.sizeGi is not set: the GiB of its files, which size the pods' ephemeral storage" $model) -}}
{{- end -}}
{{- $patterns := ternary (list) $dl.headPatterns $whole -}}
{{- $dir := include "longctx.expandPath" (get $cluster.models $model).path -}}
{{- $jobs = append $jobs (dict "model" $model "repo" $src.repo "revision" $src.revision "dir" $dir "patterns" $patterns) -}}
{{- $gi = add $gi (ternary (int $src.sizeGi) 1 $whole) -}}
{{- end -}}
{{- toJson (dict "jobs" $jobs "gi" $gi) -}}
{{- end -}}

{{/* Python run by the download init container and the fill Job: fetch each
job's files at its pinned commit; mark a whole model's directory with that
commit once every file is there (the pods of a filled claim check the mark). */}}
{{- define "longctx.fetchScript" -}}
import json, os, pathlib, re
from huggingface_hub import snapshot_download
for job in json.loads(os.environ["LONGCTX_DOWNLOADS"]):
    if not re.fullmatch(r"[0-9a-f]{40}", job["revision"]):
        raise SystemExit(f"model {job['model']}: revision {job['revision']!r} is not a commit hash")
    # Files already present are skipped, so a restarted pod or Job resumes.
    snapshot_download(job["repo"], revision=job["revision"], local_dir=job["dir"],
                      allow_patterns=job["patterns"] or None)
    if not job["patterns"]:
        pathlib.Path(job["dir"], ".longctx-revision").write_text(job["revision"] + "\n")
    print(f"model {job['model']}: {job['repo']}@{job['revision']} in {job['dir']}", flush=True)
{{- end -}}

{{- define "longctx.hfTokenEnv" -}}
{{- with .Values.weights.download.hfTokenSecret.name }}
- name: HF_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: {{ $.Values.weights.download.hfTokenSecret.key }}}
{{- end }}
{{- end -}}

{{- define "longctx.fillJobName" -}}
{{- $jobs := (include "longctx.podWeights" (dict "ctx" . "models" (list)) | fromJson).jobs -}}
{{- /* Named after what it fetches: a Job's pod template cannot change, so new
revisions make a new Job instead of a failed upgrade. */ -}}
{{- printf "%s-fill-weights-%s" (include "longctx.fullname" .) (toJson $jobs | sha256sum | trunc 8) -}}
{{- end -}}

{{- define "longctx.fillsClaim" -}}
{{- if and (eq .Values.weights.source "pvc") .Values.weights.pvc.fill.enabled -}}true{{- end -}}
{{- end -}}

{{/* A Ray pod's weights init containers. Args: ctx, models (as podWeights). */}}
{{- define "longctx.weightsInit" -}}
{{- $ctx := .ctx -}}
{{- $w := $ctx.Values.weights -}}
{{- if eq $w.source "download" }}
{{- $plan := include "longctx.podWeights" . | fromJson }}
{{- $storage := printf "%dGi" (add (int $plan.gi) (int $w.download.headroomGi)) }}
- name: fetch-weights
  image: {{ default (include "longctx.image" $ctx) $w.download.image }}
  imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
  {{- with $ctx.Values.containerSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  command: ["python", "-c"]
  args:
    - |
      {{- include "longctx.fetchScript" $ctx | nindent 6 }}
  env:
    - name: LONGCTX_DOWNLOADS
      value: {{ toJson $plan.jobs | quote }}
    {{- include "longctx.hfTokenEnv" $ctx | nindent 4 }}
  {{- /* The weights land in the pod's emptyDir, which counts against the
  pod's ephemeral storage: the scheduler must find a node with room for them,
  and with no request the kubelet evicts the pod when its disk runs short.
  The pod's limit is this one (the Ray container sets none), so it also
  covers Ray's own files (headroomGi). */}}
  resources:
    requests: {ephemeral-storage: {{ $storage }}}
    limits: {ephemeral-storage: {{ $storage }}}
  volumeMounts:
    - {name: models, mountPath: {{ $w.mountPath }}}
{{- else if include "longctx.fillsClaim" $ctx }}
{{- $jobs := (include "longctx.podWeights" (dict "ctx" $ctx "models" (list)) | fromJson).jobs }}
{{- $job := include "longctx.fillJobName" $ctx }}
- name: check-weights
  image: {{ include "longctx.image" $ctx }}
  imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
  {{- with $ctx.Values.containerSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  command: ["python", "-c"]
  args:
    - |
      import json, os, pathlib, sys
      wrong = []
      for job in json.loads(os.environ["LONGCTX_DOWNLOADS"]):
          mark = pathlib.Path(job["dir"], ".longctx-revision")
          found = mark.read_text().strip() if mark.is_file() else "no finished download"
          if found != job["revision"]:
              wrong.append(f"model {job['model']}: {job['dir']} holds {found}, expected {job['repo']}@{job['revision']}")
      if wrong:
          sys.exit("weights not ready on claim {{ $w.pvc.claimName }}:\n  " + "\n  ".join(wrong) +
                   "\nThe Job {{ $job }} fills it; Kubernetes retries this check until it has:"
                   "\n  kubectl -n {{ $ctx.Release.Namespace }} wait --for=condition=complete job/{{ $job }} --timeout=2h"
                   "\n  kubectl -n {{ $ctx.Release.Namespace }} logs job/{{ $job }}")
      print("weights present:", ", ".join(f"{j['model']}@{j['revision'][:12]}" for j in json.loads(os.environ["LONGCTX_DOWNLOADS"])))
  env:
    - name: LONGCTX_DOWNLOADS
      value: {{ toJson $jobs | quote }}
  resources:
    requests: {cpu: 100m, memory: 128Mi}
    limits: {cpu: 500m, memory: 256Mi}
  volumeMounts:
    - {name: models, mountPath: {{ $w.mountPath }}, readOnly: true}
{{- end }}
{{- end -}}

{{/* A Ray pod's weights volume. Args: ctx, models (as podWeights). */}}
{{- define "longctx.weightsVolume" -}}
{{- $w := .ctx.Values.weights -}}
{{- if eq $w.source "pvc" }}
- name: models
  persistentVolumeClaim:
    claimName: {{ required "weights.pvc.claimName is required when weights.source is pvc" $w.pvc.claimName }}
    readOnly: true
{{- else if eq $w.source "download" }}
- name: models
  emptyDir:
    sizeLimit: {{ printf "%dGi" (int (include "longctx.podWeights" . | fromJson).gi) }}
{{- end }}
{{- end -}}
