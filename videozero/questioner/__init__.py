"""The questioner: candidate questions, their writers and families, evidence and de-duplication."""
