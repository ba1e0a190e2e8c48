"""Task models composed of :mod:`seqkit.nn` parts."""

from seqkit.models.tagger import JointTagger

__all__ = ["JointTagger"]
