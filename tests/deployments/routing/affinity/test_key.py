"""Which requests share an affinity key."""

from deployments.routing.affinity.key import affinity_key


def test_document_questions_share_the_documents_key():
    assert affinity_key([1, 2, 3], 16, "abc") == affinity_key([9], 16, "abc") == "doc:abc"


def test_long_prompts_are_keyed_by_their_leading_tokens():
    head = list(range(16))
    key = affinity_key(head + [100, 101], 16, None)
    assert key.startswith("prefix:")
    assert affinity_key(head + [7], 16, None) == key
    assert affinity_key([99] + head[1:] + [100], 16, None) != key


def test_short_prompts_have_no_key():
    assert affinity_key(list(range(15)), 16, None) is None
