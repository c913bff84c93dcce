"""Faces: detect every face, align it onto the encoder's template, embed it, compare by distance.

The public face API (face_recognition's names), over a gallery from :func:`cnnkit.store.open_gallery`:

>>> from cnnkit import faces
>>> from cnnkit.store import open_gallery
>>> pipe = faces.FacePipeline()              # RetinaFace + dlib ResNet (128-d), Euclidean distance
>>> faces.compare("a.jpg", "b.jpg", pipeline=pipe).match
>>> with open_gallery("g.sqlite") as g:
...     faces.enroll(g, "ada", ["ada1.jpg"], pipeline=pipe)
...     decision = faces.resolve_decision(g, pipe)   # threshold (and its source), head, method
...     faces.verify(g, "ada", "door.jpg", pipeline=pipe, decision=decision).match
...     [f.name for f in faces.identify(g, "group.jpg", pipeline=pipe, decision=decision)]
"""
from cnnkit.faces.align import align_face, similarity_transform
from cnnkit.faces.detect import DetectorConfig, detect_faces, list_detectors
from cnnkit.faces.encoders import (
    FaceEncoder,
    embed_chips,
    encoder_tag,
    list_face_encoders,
    load_face_encoder,
    register_face_encoder,
)
from cnnkit.faces.pairs import PairsFile, pair_distances, read_pairs
from cnnkit.faces.pipeline import FacePipeline, primary_face
from cnnkit.faces.recognition import (
    Comparison,
    Decision,
    EnrollOutcome,
    IdentifiedFace,
    Verification,
    compare,
    enroll,
    identify,
    resolve_decision,
    verify,
)
from cnnkit.faces.types import Detection, FaceResult

__all__ = [
    "compare",
    "enroll",
    "verify",
    "identify",
    "resolve_decision",
    "Decision",
    "Comparison",
    "EnrollOutcome",
    "Verification",
    "IdentifiedFace",
    "FacePipeline",
    "FaceResult",
    "Detection",
    "DetectorConfig",
    "detect_faces",
    "list_detectors",
    "align_face",
    "similarity_transform",
    "FaceEncoder",
    "encoder_tag",
    "embed_chips",
    "load_face_encoder",
    "list_face_encoders",
    "register_face_encoder",
    "primary_face",
    "read_pairs",
    "PairsFile",
    "pair_distances",
]
