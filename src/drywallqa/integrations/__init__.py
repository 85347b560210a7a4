"""The model inside the labelling tools annotators already use.

- :mod:`drywallqa.integrations.label_studio`: a Label Studio ML backend. Label Studio asks it for
  predictions of a project's tasks and gets brush masks (Label Studio's RLE) with the model's
  confidence, one per brush label of the project that names a prompt class;
  ``drywallqa review serve-label-studio`` serves it (:mod:`~drywallqa.integrations.label_studio_app`).
- :mod:`drywallqa.integrations.cvat`: a CVAT auto-annotation function for ``cvat-sdk``
  (``cvat-cli task auto-annotate TASK --function-module drywallqa.integrations.cvat``).

Both are drivers around the one :class:`~drywallqa.inference.Predictor`, like ``predict`` and
``serve``; masks are judged with :mod:`drywallqa.qa` and encoded with the review loop's codecs
(:mod:`drywallqa.serving.review`). This package sits beside ``serving`` in the layers: only the
command line imports it.
"""
