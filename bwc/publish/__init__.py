"""Open data: public tables of what body-camera audio shows, with disclosure control, as releases."""
