"""Anchor assigners (SMS, DMS, NAMS, HAMBox), their result and one-image functional forms."""
from ppdet_hambox.modeling.assigners.assignment import Assignment
from ppdet_hambox.modeling.assigners.dms import DMSAssigner
from ppdet_hambox.modeling.assigners.functional import dms_assign, hambox_assign, nams_assign, sms_assign
from ppdet_hambox.modeling.assigners.hambox import HAMBoxAssigner
from ppdet_hambox.modeling.assigners.nams import NAMSAssigner
from ppdet_hambox.modeling.assigners.sms import SMSAssigner

__all__ = ['Assignment', 'SMSAssigner', 'DMSAssigner', 'NAMSAssigner', 'HAMBoxAssigner',
           'sms_assign', 'dms_assign', 'nams_assign', 'hambox_assign']
