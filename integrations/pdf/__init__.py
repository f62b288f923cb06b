"""PDF documents rendered by medbill (EOBs from 835 remittances), with fpdf2 core fonts only."""

from integrations.pdf.eob import render_claim_eob, render_remittance_eob

__all__ = ["render_claim_eob", "render_remittance_eob"]
