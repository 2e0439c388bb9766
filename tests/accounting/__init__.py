"""Tests of ``tunedp.accounting`` (a package so its module names cannot collide with other test folders)."""
