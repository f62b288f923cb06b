"""X12 5010 for medbill: one tokenizer/envelope reader, one writer, the 837P builder and the 999/277CA parsers."""
