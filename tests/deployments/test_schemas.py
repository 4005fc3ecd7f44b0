"""Request bodies: OpenAI ranges and the cluster's extensions."""

import pytest
from pydantic import ValidationError

from deployments.schemas import ChatCompletionBody, CompletionBody

MSG = [{"role": "user", "content": "hi"}]


def test_max_completion_tokens_is_an_alias():
    assert ChatCompletionBody(model="m", messages=MSG, max_completion_tokens=7).max_tokens == 7


@pytest.mark.parametrize("field, value", [("temperature", 2.5), ("top_p", 0), ("n", 17),
                                          ("max_tokens", 0), ("presence_penalty", 3)])
def test_out_of_range_sampling_is_refused(field, value):
    with pytest.raises(ValidationError, match=field):
        ChatCompletionBody(model="m", messages=MSG, **{field: value})


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="Extra inputs"):
        ChatCompletionBody(model="m", messages=MSG, temprature=1)


def test_content_parts_are_joined():
    body = ChatCompletionBody(model="m", messages=[{"role": "user", "content": [
        {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
    assert body.message_dicts() == [{"role": "user", "content": "ab"}]


def test_completion_prompt_forms():
    assert CompletionBody(model="m", prompt=["one"]).prompt == "one"
    assert CompletionBody(model="m", prompt=[1, 2]).prompt == [1, 2]
    with pytest.raises(ValidationError, match="batched prompts"):
        CompletionBody(model="m", prompt=["a", "b"])
    with pytest.raises(ValidationError, match="must not be empty"):
        CompletionBody(model="m", prompt="")


def test_top_logprobs_requires_logprobs():
    with pytest.raises(ValidationError, match="requires logprobs"):
        ChatCompletionBody(model="m", messages=MSG, top_logprobs=3)
