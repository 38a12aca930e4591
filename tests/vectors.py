"""Pre-trained vector files as the tests write them: word2vec text or binary, gzipped by extension."""

import gzip

import numpy as np


def write_vectors(path, vectors: dict, binary: bool = False, count: int | None = None) -> str:
    """vectors (word -> values) under the header "count dim"; count defaults to len(vectors), a
    larger one makes a short file. Binary: word2vec's records, as its C tool and gensim write them;
    text: each value as its float32's repr, so it reads back exactly."""
    dim = len(next(iter(vectors.values())))
    rows = {w: np.asarray(v, dtype="<f4") for w, v in vectors.items()}
    if binary:
        body = b"".join(w.encode() + b" " + v.tobytes() + b"\n" for w, v in rows.items())
    else:
        body = "".join(f"{w} {' '.join(repr(float(x)) for x in v)}\n" for w, v in rows.items()).encode()
    with (gzip.open if str(path).endswith(".gz") else open)(path, "wb") as f:
        f.write(f"{len(rows) if count is None else count} {dim}\n".encode() + body)
    return str(path)
