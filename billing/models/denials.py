"""Tables of denial work and appeals: work items, notes, appeal letters and their templates, follow-up."""
