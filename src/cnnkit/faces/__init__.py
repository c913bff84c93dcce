"""Faces: detect every face, align it onto the encoder's template, encode it, compare by distance.

>>> from cnnkit.faces import FacePipeline
>>> pipe = FacePipeline()                  # RetinaFace + dlib ResNet (128-d), Euclidean distance
>>> a, b = pipe.encode_one("a.jpg"), pipe.encode_one("b.jpg")
>>> float(((a.embedding - b.embedding) ** 2).sum() ** 0.5) < pipe.default_threshold
"""
from cnnkit.faces.align import align_face, similarity_transform
from cnnkit.faces.detect import DetectorConfig, detect_faces, list_detectors
from cnnkit.faces.encoders import FaceEncoder, list_face_encoders, load_face_encoder, register_face_encoder
from cnnkit.faces.pairs import PairsFile, pair_distances, read_pairs
from cnnkit.faces.pipeline import FacePipeline, primary_face
from cnnkit.faces.types import Detection, FaceResult

__all__ = [
    "FacePipeline",
    "FaceResult",
    "Detection",
    "DetectorConfig",
    "detect_faces",
    "list_detectors",
    "align_face",
    "similarity_transform",
    "FaceEncoder",
    "load_face_encoder",
    "list_face_encoders",
    "register_face_encoder",
    "primary_face",
    "read_pairs",
    "PairsFile",
    "pair_distances",
]
