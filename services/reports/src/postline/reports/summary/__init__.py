"""The weekly summary: a mail of the week's figures against the week before, sent through
Postline to ``servers.<name>.weekly_summary.to`` (``schedule``, ``figures``, ``render``,
``runner``)."""
