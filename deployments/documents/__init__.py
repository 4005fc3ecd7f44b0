"""Long-document QA (issue 4): upload once, ask many.

  api.py        the HTTP endpoints and the question path (through the ingress's request path)
  layout.py     the prompt layout [system][document][question] and its token ids
  ids_cache.py  PrefixIdsCache: documents' prefix ids kept per ingress replica (no store read per question)
  responses.py  the endpoints' answer bodies, for the OpenAPI document
  warm.py       Warmer: prefill a document's prefix ahead of its first question (warm states)
  store.py      DocumentStore: the interface every backend implements
  records.py    Document, DocumentMeta, WarmState, Page, cursors
  errors.py     the store's refusals, each with its HTTP status
  backends/     open_store(DocumentStoreConfig) and the SQLite / Redis backends

The store's settings are part of the config schema
(``cluster.config.documents``). See docs/documents-store.md.
"""
