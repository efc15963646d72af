"""Stage 4 and 5, the gallery and what reads it: promotion, the vector index, recognition,
verification, erasure, archives, re-embedding, a reviewer's corrections."""
