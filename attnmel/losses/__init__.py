"""Training losses of Eq. 5: focal loss for classification, batch Dice for the attention maps."""

from attnmel.losses.attention import LossTerms, attnmel_loss
from attnmel.losses.dice import batch_dice_loss, downsample_reference
from attnmel.losses.focal import focal_loss

__all__ = ["LossTerms", "attnmel_loss", "batch_dice_loss", "downsample_reference", "focal_loss"]
