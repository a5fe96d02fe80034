"""What is read from logs: feedback pages, the class report, the similarity report."""
