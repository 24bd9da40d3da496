from django import forms


class ThresholdForm(forms.Form):
    warning = forms.FloatField()
    critical = forms.FloatField()


class IncidentCloseForm(forms.Form):
    note = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))
    confirm = forms.BooleanField(label="Yes, close this incident")
