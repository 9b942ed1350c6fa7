"""The whole CLEVR validation as one resumable, shardable plan (``localcomp clevr validate``)."""
