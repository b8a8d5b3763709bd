"""AttnMel: a plain-PyTorch reproduction of "Melanoma Recognition via Visual Attention".

Yan, Kawahara and Hamarneh, IPMI 2019. This package never imports Ray; ``orchestrator`` drives
it on a Ray cluster.
"""

__version__ = "0.1.0"
