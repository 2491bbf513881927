"""The example support desk (`HelpdeskService`): free text, a ticket workflow, threads."""
