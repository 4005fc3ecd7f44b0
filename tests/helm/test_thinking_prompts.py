"""The operator's deep-thinking prompt files reach every Ray pod from their ConfigMap or Secret."""

from __future__ import annotations

import pytest

from tests.helm.rendering import render, the

MOUNT = {"name": "thinking-prompts", "mountPath": "/etc/longctx/thinking", "readOnly": True}


def pods(chart, values):
    spec = the(render(chart, values), "RayService")["spec"]["rayClusterConfig"]
    return [spec["headGroupSpec"]["template"]["spec"], *(g["template"]["spec"] for g in spec["workerGroupSpecs"])]


def test_no_prompt_volume_by_default(chart):
    for pod in pods(chart, {}):
        assert all(v["name"] != "thinking-prompts" for v in pod["volumes"])
        assert all(m["name"] != "thinking-prompts" for m in pod["containers"][0]["volumeMounts"])


@pytest.mark.parametrize("source, volume", [
    ({"configMap": "il3-prompts"}, {"configMap": {"name": "il3-prompts"}}),
    ({"secret": "il3-prompts"}, {"secret": {"secretName": "il3-prompts"}}),
])
def test_prompts_are_mounted_on_every_ray_pod(chart, source, volume):
    values = {"thinkingPrompts": source, "overrides": [
        "models.internlm3-8b-instruct.thinking_system_prompt_file=/etc/longctx/thinking/internlm3-8b-instruct.txt"]}
    for pod in pods(chart, values):
        assert {"name": "thinking-prompts", **volume} in pod["volumes"]
        assert MOUNT in pod["containers"][0]["volumeMounts"]


def test_one_source_at_a_time(chart):
    with pytest.raises(Exception, match="thinkingPrompts"):
        render(chart, {"thinkingPrompts": {"configMap": "a", "secret": "b"}})
