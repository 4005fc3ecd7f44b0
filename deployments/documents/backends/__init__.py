"""Document store backends behind one protocol (``deployments.documents.store``).

  factory.py  open_store(DocumentStoreConfig): the configured backend
  common.py   checks and encodings both backends share
  sqlite.py   the embedded default, one node
  redis.py    shared by ingress replicas on several nodes
"""
