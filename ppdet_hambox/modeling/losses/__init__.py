"""Detection losses. Each module holds one loss; a new loss is a new file."""
from ppdet_hambox.modeling.losses.focal_loss import sigmoid_focal_loss
from ppdet_hambox.modeling.losses.hambox_loss import HAMBoxLoss
from ppdet_hambox.modeling.losses.smooth_l1_loss import smooth_l1_loss

__all__ = ['sigmoid_focal_loss', 'smooth_l1_loss', 'HAMBoxLoss']
