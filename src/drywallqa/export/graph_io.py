"""Names and dynamic axes of the exported graph's inputs and outputs (torch-free, so runtimes can import them).

- ``images``: float32 ``(B, 3, H, W)`` RGB in ``[0, 1]``, ``H`` and ``W`` multiples of 32;
- ``prompt_embeddings``: float32 ``(B, D)``;
- ``mask_logits``: float32 ``(B, 1, H, W)``; ``confidence_logits``: float32 ``(B,)``.
"""

INPUT_NAMES = ("images", "prompt_embeddings")
OUTPUT_NAMES = ("mask_logits", "confidence_logits")
# Symbolic dimension names, shared by inputs and outputs so runtimes know they are equal.
DYNAMIC_AXES = {
    "images": {0: "batch", 2: "height", 3: "width"},
    "prompt_embeddings": {0: "batch"},
    "mask_logits": {0: "batch", 2: "height", 3: "width"},
    "confidence_logits": {0: "batch"},
}
